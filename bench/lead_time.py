"""Release lead time on a warm machine, trigger → verdict, split by step.

    python -m bench --only lead_time [--quick]
    python -m bench.lead_time WORK_DIR [--quick]     # the measurement itself (a child process)

Two real releases, each the `release` flow (flows/release.py) called in-process with the
real ports (infra/controller/wiring.real_ports: MLflow sqlite under a temp CANARYFLOW_STATE,
Locust, Evidently, vLLM containers) on a DockerTarget of its own (tests/fixtures
make_config: own name and ports), Prefect in ephemeral mode under a temp PREFECT_HOME
(started before the clock runs):
1. the trained demo model, first release: validate → package → build (cached image) →
   smoke → deploy as the stable;
2. the same weights with a new NOTICE file (new content, so a new version and a fresh image
   build of the model layer, as any new model needs): validate (vs the champion) → package
   → build → smoke → deploy canary → canary analysis (default policy and load) → decide.
The split comes from ReleaseOutcome.timings; `package_build` is split into package, build
and smoke by timing the image port. The freshly built image is removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.common import ROOT, Context, Row, num

NAME = "lead_time"
FLAGGER_PROMOTE_S = 25 * 60
METHOD = (
    "measured: two real in-process runs of the release flow (first release, then a canary "
    "release of a new model version) with real ports on a DockerTarget of its own; "
    "one run each (no repeats: ~8 min together), so no min–max."
)
QUICK_SPEC: dict[str, Any] = {
    "canary": {"steps": [50], "policy": {"min_samples": 100}},
    "load": {"users": 6, "max_tokens": 8, "max_step_s": 240},
}


def run(ctx: Context) -> None:
    work = ctx.work / "lead-time"
    work.mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "MLFLOW_TRACKING", "CANARYFLOW_DOCKER_"))
    }
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "CANARYFLOW_STATE": str(work / "state"),
            "PREFECT_HOME": str(work / "prefect"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    cmd = [sys.executable, "-m", "bench.lead_time", str(work)] + (["--quick"] if ctx.quick else [])
    log = ctx.work / "lead_time.log"
    result = _follow(cmd, env, log)
    if result is None:
        raise RuntimeError(f"lead-time child failed: {log.read_text()[-2000:]}")
    _report(ctx, result)


def _follow(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any] | None:
    """Run the child, echo its progress lines, keep its whole output in `log`."""
    result: dict[str, Any] | None = None
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            if line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
            elif line.startswith(("  · ", "RELEASE", "Traceback")):
                print(line.rstrip(), flush=True)
        code = proc.wait()
    return result if code == 0 else None


def _report(ctx: Context, found: dict[str, Any]) -> None:
    for key, label in (("first", "first release (no canary)"), ("canary", "canary release")):
        r = found[key]
        split = ", ".join(f"{k} {num(v)} s" for k, v in r["steps"].items())
        ctx.emit(
            Row(
                NAME,
                f"lead time trigger → verdict, {label}",
                f"{num(r['total_s'])} s",
                "—",
                "—",
                "—",
                "—",
                f"verdict {r['verdict']}; {split}; image {'built' if r['built'] else 'cached'}",
            )
        )
    r = found["canary"]
    for step, seconds in r["steps"].items():
        ctx.emit(
            Row(
                NAME,
                f"canary release step: {step}",
                f"{num(seconds)} s",
                f"of {num(r['total_s'])} s total",
                f"{seconds / r['total_s']:.0%}",
            )
        )
    real = r["steps"].get("analysis", 0.0) + r["steps"].get("decide", 0.0)
    ctx.emit(
        Row(
            NAME,
            "time to promote a good canary, one REAL run (analysis + decide)",
            f"{num(real)} s",
            f"Flagger documented example 1m × 50/2 = {FLAGGER_PROMOTE_S} s",
            f"{real / FLAGGER_PROMOTE_S:.3f}×",
            "—",
            "—",
            f"steps {r['canary_steps']}; {r['requests']} requests through the router",
        )
    )


# -- the child process ---------------------------------------------------------------------


class TimedImages:
    """The real image port (build_image + smoke_test), timed in two parts."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {"build": 0.0, "smoke": 0.0}
        self.built: list[str] = []

    def build(self, model_dir: Path) -> str:
        from infra.image.build import build_image
        from infra.image.smoke import smoke_test

        start = time.monotonic()
        image = build_image(model_dir, progress=lambda m: print(f"  · {m}", flush=True))
        self.times["build"] = time.monotonic() - start
        smoke_test(image.tag, model_dir=model_dir)
        self.times["smoke"] = time.monotonic() - start - self.times["build"]
        if image.built:
            self.built.append(image.tag)
        return image.tag


def child(work: Path, quick: bool) -> dict[str, Any]:
    from prefect import flow

    from flows.release import release
    from infra.controller.wiring import GOLDEN_FILE, real_ports
    from infra.load.step import LocustStepLoad
    from infra.spec import ReleaseSpec
    from tests.fixtures.docker_target import make_config, running_target
    from tests.fixtures.models import trained
    from validation import manifest

    @flow(name="bench-warmup")
    def warmup() -> None:
        """Starts the ephemeral Prefect server before any clock runs."""

    warmup()
    v2 = shutil.copytree(trained(), work / "v2")
    (v2 / "NOTICE").write_text(f"bench {uuid.uuid4().hex}: same weights as v1, a new version\n")
    manifest.write(v2)  # new content digest → a new registry version with v1's weights
    config = make_config(
        work / "target",
        ready_timeout_s=900,
        drain_timeout_s=60,
        labels={"io.canaryflow.test": "1", "io.canaryflow.bench": "1"},
    )
    out: dict[str, Any] = {}
    images = TimedImages()
    with running_target(config) as target:
        for key, model in (("first", trained()), ("canary", v2)):
            spec = ReleaseSpec.model_validate(
                {
                    "model": str(model),
                    "registered_name": "tiny-chat",
                    # the bench names the demo model's own held-out file as the release's set
                    "evaluation": {
                        "path": str(model / GOLDEN_FILE),
                        "scorers": [{"kind": "exact"}],
                    },
                    **(QUICK_SPEC if quick else {}),
                }
            )

            def step_load(model_dir: Path, spec: ReleaseSpec = spec) -> LocustStepLoad:
                return LocustStepLoad(spec, target, model_dir / GOLDEN_FILE)

            ports = replace(real_ports(spec), target=target, images=images, load=step_load)
            images.times = {"build": 0.0, "smoke": 0.0}
            start = time.monotonic()
            outcome = release(spec=spec, ports=ports)
            total = time.monotonic() - start
            print(
                f"RELEASE {key}: {outcome.summary()} in {total:.0f} s {outcome.timings}", flush=True
            )
            out[key] = _split(outcome, total, dict(images.times), bool(images.built))
    _remove_images(images.built)
    return out


def _split(outcome: Any, total: float, image: dict[str, float], built: bool) -> dict[str, Any]:
    t = dict(outcome.timings)
    steps = {
        "validate": t.get("validate", 0.0),
        "package": max(0.0, t.get("package_build", 0.0) - image["build"] - image["smoke"]),
        "build": image["build"],
        "smoke test": image["smoke"],
        "deploy": t.get("deploy", 0.0),
    }
    if "canary" in t:
        steps["analysis"] = t["canary"]
        steps["decide"] = t.get("decide", 0.0)
    steps["other (reconcile, resolve, report)"] = max(0.0, total - sum(steps.values()))
    return {
        "total_s": total,
        "verdict": outcome.verdict,
        "steps": steps,
        "built": built,
        "canary_steps": [f"{s.weight}%:{s.outcome}" for s in outcome.steps],
        "requests": sum(s.requests for s in outcome.steps),
    }


def _remove_images(tags: list[str]) -> None:
    from tests.fixtures.docker_target import docker_client

    client = docker_client()
    for tag in tags:
        try:
            client.images.remove(tag, force=False)
        except Exception as exc:  # an image in use or already gone: leave it, say so
            print(f"  · could not remove {tag}: {exc}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("work", type=Path)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    print("RESULT " + json.dumps(child(args.work, args.quick)), flush=True)
