"""The real ports of a release: the spec's deploy target, MLflow, Locust + Evidently, vLLM.

    ports = real_ports(spec)          # what the release flow uses when given no ports
    ports.target, ports.registry      # make_target(spec.target), the settings' MLflow store

Heavy imports (mlflow, torch, docker, evidently) happen inside the functions that need them,
so the controller and its tests import none of them.
"""

from __future__ import annotations

from pathlib import Path

from infra.controller.ports import CheckReport, ReleasePorts, StepEvidence
from infra.errors import DriftError, RouterUnreachableError, ValidationError
from infra.load.prompts import PromptSource
from infra.load.runner import LoadProfile, LoadResult, run_load
from infra.registry import registry_from_uri
from infra.settings import Settings
from infra.spec import ReleaseSpec
from infra.targets import make_target
from infra.targets.base import DeployTarget
from validation.analysis import CanaryHealth
from validation.drift import DriftResult
from validation.metrics.locust_stats import LocustSource

GOLDEN_FILE = "golden.jsonl"
_WINDOW_MARGIN_S = 30.0


def real_ports(spec: ReleaseSpec, settings: Settings | None = None) -> ReleasePorts:
    """Target by name (unknown → SpecError), MLflow registry, Locust load, real checks."""
    settings = settings or Settings()
    if spec.target == "docker":
        from infra.targets import docker

        docker.register()
    target = make_target(spec.target)
    uri = settings.mlflow_uri()
    registry = registry_from_uri(uri)
    return ReleasePorts(
        target=target,
        registry=registry,
        load=lambda model_dir: LocustStepLoad(spec, target, model_dir / GOLDEN_FILE),
        check=OfflineCheck(spec),
        images=SmokedImages(spec.serving.registry if spec.target == "kubernetes" else None),
        work_dir=settings.state / "releases",
        tracking_uri=uri,
    )


class LocustStepLoad:
    """One Locust run through the target's router per call; drift vs the golden set.

    `reference` is the candidate's golden set: the prompts (prompts='golden') and the
    reference of the drift check.
    """

    def __init__(self, spec: ReleaseSpec, target: DeployTarget, reference: Path) -> None:
        self.spec = spec
        self.target = target
        self.reference = reference

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        state = self.target.status()
        if state.router_url is None:
            raise RouterUnreachableError(
                "the target reports no running router; the release restores it from its "
                "recorded weights (set_weights) — if this repeats, check `make status`"
            )
        result = run_load(state.router_url, _api_key(self.target),
                          self.spec.serving.served_model_name, self._profile(), out_dir,
                          requests=requests, timeout_s=self.spec.load.max_step_s + 60)  # fmt: skip
        canary = result.variants.get("canary")
        health = CanaryHealth(
            healthy=state.canary is not None and state.canary.healthy,
            requests=canary.count if canary else 0,
            failures=canary.failures if canary else 0,
        )
        reports = {"locust": result.html}
        drift = self._drift(result, out_dir / "evidently.html")
        if drift is not None and drift.html_path:
            reports["evidently"] = Path(drift.html_path)
        return StepEvidence(source=LocustSource(requests_jsonl=result.results), health=health,
                            window_s=result.duration_s + _WINDOW_MARGIN_S, drift=drift,
                            reports=reports)  # fmt: skip

    def _profile(self) -> LoadProfile:
        load = self.spec.load
        if load.prompts == "replay":
            prompts = PromptSource(kind="replay", path=Path(load.replay_file or ""))
        elif load.prompts == "golden" and self.reference.is_file():
            prompts = PromptSource(kind="golden", path=self.reference)
        else:
            prompts = PromptSource()
        return LoadProfile(users=load.users, spawn_rate=load.spawn_rate, prompts=prompts,
                           max_tokens=load.max_tokens, max_duration_s=load.max_step_s)  # fmt: skip

    def _drift(self, result: LoadResult, html: Path) -> DriftResult | None:
        """Canary prompts/outputs vs the golden set; None (check inconclusive) when it fails."""
        import pandas as pd  # type: ignore[import-untyped]

        from validation.drift import detect_drift, frame_from_examples
        from validation.golden import read_jsonl

        if not self.reference.is_file():
            return None
        try:
            rows = pd.read_json(result.results, lines=True)
            current = rows[rows["variant"] == "canary"][["prompt", "completion"]]
            reference = frame_from_examples(read_jsonl(self.reference))
            return detect_drift(reference, current, html_path=html,
                                drift_share=self.spec.canary.policy.drift.max_share)  # fmt: skip
        except (DriftError, ValueError, KeyError):  # no rows / no canary rows / no columns
            return None


def _api_key(target: DeployTarget) -> str:
    key_file = getattr(target, "api_key_file", None)
    return Path(key_file).read_text(encoding="utf-8").strip() if key_file else ""


class OfflineCheck:
    """Artifact, memory fit and golden-set quality (vs threshold and the champion)."""

    def __init__(self, spec: ReleaseSpec) -> None:
        self.spec = spec

    def check(self, model_dir: Path, champion_dir: Path | None) -> CheckReport:
        from infra.local_generator import TransformersGenerator
        from validation import memory, quality
        from validation.artifact import check_artifact
        from validation.golden import read_jsonl

        serving = self.spec.serving
        try:
            report = check_artifact(model_dir, serving.flavor)
            memory.check_model_fit_cpu(model_dir, report.weight_bytes, serving.max_model_len,
                                       serving.max_num_seqs, serving.kvcache_space_gib)  # fmt: skip
        except ValidationError as exc:
            return CheckReport(reasons=(f"{type(exc).__name__}: {exc}",))
        examples = read_jsonl(model_dir / GOLDEN_FILE)
        score = quality.score(TransformersGenerator(model_dir), examples)
        champion = None
        if champion_dir is not None:
            champion = quality.score(TransformersGenerator(champion_dir), examples)
        gate = quality.gate(score, self.spec.quality_threshold, champion,
                            self.spec.max_regression)  # fmt: skip
        metrics = {"quality.accuracy": score.accuracy, "quality.n": float(score.n)}
        if champion is not None:
            metrics["quality.champion_accuracy"] = champion.accuracy
        return CheckReport(reasons=tuple(gate.reasons), metrics=metrics)


class SmokedImages:
    """infra/image: content-addressed build (a no-op when it exists), then the smoke test;
    with a `registry` (target kubernetes, serving.registry) the push, and the image the
    Deployment gets is REGISTRY/serving@sha256:… (a refused push is ImagePushError, an
    ImageBuildError: the candidate is rejected before anything reaches the cluster)."""

    def __init__(self, registry: str | None = None) -> None:
        self.registry = registry

    def build(self, model_dir: Path) -> str:
        from infra.image.build import build_image
        from infra.image.smoke import smoke_test

        built = build_image(model_dir)
        smoke_test(built.tag, model_dir=model_dir)
        if self.registry is None:
            return built.tag
        from infra.image.push import push_image

        return push_image(built.tag, self.registry).reference
