"""The real ports of a release: the spec's deploy target, MLflow, Locust + Evidently, vLLM.

    ports = real_ports(spec)          # what the release flow uses when given no ports
    ports.target, ports.registry      # make_target(spec.target), the settings' MLflow store

Heavy imports (mlflow, torch, docker, evidently) happen inside the functions that need them,
so the controller and its tests import none of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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
from validation.evaluation.mlflow_scoring import Scoring
from validation.evaluation.source import PreparedSet, prepare, register
from validation.metrics.locust_stats import LocustSource
from validation.quality import Answerer

GOLDEN_FILE = "golden.jsonl"
_WINDOW_MARGIN_S = 30.0
_UNRESOLVED_MAX_TOKENS = 256


def real_ports(spec: ReleaseSpec, settings: Settings | None = None) -> ReleasePorts:
    """Target by name (unknown → SpecError), MLflow registry, Locust load, real checks."""
    settings = settings or Settings()
    if spec.target == "docker":
        from infra.targets import docker

        docker.register()
    target = make_target(spec.target)
    uri = settings.mlflow_uri()
    registry = registry_from_uri(uri)
    check = OfflineCheck(spec, tracking_uri=uri)
    return ReleasePorts(
        target=target,
        registry=registry,
        load=lambda model_dir: check.step_load(target, model_dir, settings.state / "evaluation"),
        check=check,
        images=SmokedImages(spec.serving.served_model_name),
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
        # max_tokens unset: OfflineCheck.step_load resolves it from the evaluation set
        return LoadProfile(users=load.users, spawn_rate=load.spawn_rate, prompts=prompts,
                           max_tokens=load.max_tokens or _UNRESOLVED_MAX_TOKENS,
                           max_duration_s=load.max_step_s)  # fmt: skip

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
    """The release's evaluation set (named errors first), artifact, memory fit at the
    model's defaults, then candidate and champion scored on the same rows (MLflow
    evaluation runs when a tracking store is given) and the paired gate.

    `answerer(model_dir, max_tokens)` is the offline answerer (default: the transformers
    greedy loop); tests pass a fake. The prepared set is kept for the step load
    (`prompt_file`), so the canary sends the rows the release owns, never the candidate's.
    """

    def __init__(
        self,
        spec: ReleaseSpec,
        tracking_uri: str | None = None,
        answerer: Callable[[Path, int], Answerer] | None = None,
    ) -> None:
        self.spec = spec
        self.tracking_uri = tracking_uri
        self.answerer = answerer or _transformers_answerer
        self._prepared: dict[Path, PreparedSet] = {}

    def prepared(self, model_dir: Path) -> PreparedSet:
        """The release's rows, read and checked once per candidate (named errors)."""
        if model_dir not in self._prepared:
            self._prepared[model_dir] = prepare(self.spec.evaluation, model_dir, self.tracking_uri)
        return self._prepared[model_dir]

    def check(self, model_dir: Path, champion_dir: Path | None) -> CheckReport:
        from validation import memory, model_defaults
        from validation.artifact import check_artifact
        from validation.evaluation.gate import evaluate_offline

        serving, tags = self.spec.serving, {}
        try:
            prepared = self.prepared(model_dir)
            tags = dict(prepared.tags)
            report = check_artifact(model_dir, serving.flavor)
            max_len = model_defaults.max_model_len(model_dir, serving.max_model_len)
            memory.check_model_fit_cpu(model_dir, report.weight_bytes, max_len,
                                       serving.max_num_seqs, serving.kvcache_space_gib)  # fmt: skip
        except ValidationError as exc:
            return CheckReport(reasons=(f"{type(exc).__name__}: {exc}",), tags=tags)
        if self.tracking_uri is not None:  # only a checked set, of a sound candidate
            prepared = register(prepared, self.spec.evaluation, self.tracking_uri)
        max_tokens = self.max_tokens(model_dir)
        evaluation = self.spec.evaluation
        assert evaluation is not None  # prepare refused a spec without one
        result = evaluate_offline(
            evaluation, prepared.evalset, self.answerer(model_dir, max_tokens),
            self.answerer(champion_dir, max_tokens) if champion_dir is not None else None,
            scoring=self._scoring(), tags=dict(prepared.tags),
        )  # fmt: skip
        metrics = {**result.metrics, "serving.max_model_len": float(max_len),
                   "load.max_tokens": float(max_tokens)}  # fmt: skip
        reasons = tuple(f"QualityGateError: {r}" for r in result.reasons)
        if reasons and result.misses:
            reasons += (f"examples of failed rows: {'; '.join(result.misses)}",)
        return CheckReport(reasons=reasons, metrics=metrics, tags=result.tags)

    def max_tokens(self, model_dir: Path) -> int:
        from validation import model_defaults

        evalset = self.prepared(model_dir).evalset
        return model_defaults.max_tokens(model_dir, evalset, self.spec.load.max_tokens)

    def prompt_file(self, model_dir: Path, out_dir: Path) -> Path:
        """The release's rows as the load's golden-format prompt file ({prompt, answer})."""
        evalset = self.prepared(model_dir).evalset
        path = out_dir / f"evaluation-{evalset.digest.removeprefix('sha256:')[:12]}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for row in evalset.rows:
                answer = row.expectations.get("expected_response")
                f.write(
                    json.dumps(
                        {"prompt": row.prompt, "answer": "" if answer is None else str(answer)}
                    )
                    + "\n"
                )
        return path

    def step_load(self, target: DeployTarget, model_dir: Path, out_dir: Path) -> LocustStepLoad:
        """The canary's load: the release's rows, max_tokens resolved from them."""
        load = self.spec.load.model_copy(update={"max_tokens": self.max_tokens(model_dir)})
        spec = self.spec.model_copy(update={"load": load})
        return LocustStepLoad(spec, target, self.prompt_file(model_dir, out_dir))

    def _scoring(self) -> Scoring | None:
        if self.tracking_uri is None:
            return None
        from validation.evaluation.mlflow_scoring import MlflowScoring

        return MlflowScoring(self.tracking_uri)


def _transformers_answerer(model_dir: Path, max_tokens: int) -> Answerer:
    from infra.local_generator import TransformersGenerator

    return TransformersGenerator(model_dir, max_new_tokens=max_tokens)


class SmokedImages:
    """infra/image: content-addressed build (a no-op when it exists), then the smoke test
    under the name the release serves the model as."""

    def __init__(self, served_model_name: str = "model") -> None:
        self.served_model_name = served_model_name

    def build(self, model_dir: Path) -> str:
        from infra.image.build import build_image
        from infra.image.smoke import smoke_test

        built = build_image(model_dir)
        smoke_test(built.tag, model_dir=model_dir, served_model_name=self.served_model_name)
        return built.tag
