"""`canaryflow release SPEC [--watch]`: start a release as a run of the `release` deployment.

    canaryflow release release.yaml --watch        # a ReleaseSpec file (YAML, or .json)
    canaryflow release models:/my-model/7          # just a model: the spec's defaults
    canaryflow release ./my-model-dir --watch

The same run `prefect deployment run release/release --params '{"spec": ...}'` starts, so the
worker does the work and the Prefect UI shows it; the spec is validated here first, so a bad
one is refused with every field error before anything is submitted. Relative local paths in
the file (`model:`, `evaluation.path:`) are taken relative to the file, as a reader expects.

`--watch` follows the run: a line at the first look and at least every 10 s (phase, step,
requests), then the verdict, its reasons and where the record is. Exit status: 0 submitted
(or, watched, promoted), 3 watched and not promoted (rolled back, rejected, aborted), 1 the
run failed or crashed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from infra.errors import SpecError
from infra.spec import ReleaseSpec

DEPLOYMENT = "release/release"
NOT_PROMOTED = 3


def add_release_command(sub: Any) -> None:
    p = sub.add_parser("release", help="start a release (a run of the release deployment)")
    p.add_argument("spec", help="ReleaseSpec file (.yaml/.yml/.json), models:/NAME/VERSION, "
                   "models:/NAME@ALIAS, or a model directory")  # fmt: skip
    p.add_argument("--watch", action="store_true", help="follow the run until its verdict")
    p.add_argument("--deployment", default=DEPLOYMENT, help=f"default: {DEPLOYMENT}")
    p.add_argument("--timeout-s", type=float, default=4 * 3600, help="--watch gives up after")
    p.set_defaults(run=_release)


def spec_params(given: str) -> dict[str, Any]:
    """The deployment's `spec` parameter for SPEC as typed; SpecError naming what is wrong."""
    from infra.githook.spec_at import parse_spec

    path = Path(given)
    if path.suffix in {".yaml", ".yml", ".json"}:
        if not path.is_file():
            raise SpecError(f"{given}: no such spec file; give a ReleaseSpec file, a "
                            "models:/NAME/VERSION reference or a model directory")  # fmt: skip
        spec = parse_spec(path.read_text(encoding="utf-8"), path.name, origin=given)
        return _anchored(spec.model_dump(mode="json", exclude_unset=True), path.parent)
    if given.startswith("models:/") or path.is_dir():
        model = given if given.startswith("models:/") else str(path.resolve())
        parse_spec(json.dumps({"model": model}), "spec.json", origin=given)  # refused if bad
        return {"model": model}
    raise SpecError(f"{given!r} is neither a spec file (.yaml, .yml, .json), a models:/ "
                    "reference nor a model directory")  # fmt: skip


def _anchored(spec: dict[str, Any], base: Path) -> dict[str, Any]:
    """Relative local paths resolved against the spec file's directory (the worker's cwd is
    not the caller's)."""

    def fix(value: str) -> str:
        return (
            value
            if "://" in value or ":/" in value or Path(value).is_absolute()
            else str((base / value).resolve())
        )

    out = dict(spec)
    out["model"] = fix(out["model"])
    evaluation = out.get("evaluation")
    if isinstance(evaluation, dict) and isinstance(evaluation.get("path"), str):
        out["evaluation"] = {**evaluation, "path": fix(evaluation["path"])}
    return out


def _api_url() -> str:
    from infra import services

    return os.environ.get("PREFECT_API_URL") or services.PREFECT_API_URL


def _release(ns: argparse.Namespace) -> int:
    from infra.controller.report import slug
    from infra.prefect_api import PrefectApi, PrefectApiError, reasons_of, verdict_of

    spec = spec_params(ns.spec)
    # validated again as sent: the anchored paths, not the file's, go to the deployment
    name, _version, _alias = ReleaseSpec.model_validate(spec).model_ref()
    api = PrefectApi(_api_url())
    try:
        api.get("/health")
    except OSError:
        why = f"no Prefect server answers at {api.api_url}"
        raise PrefectApiError(
            f"{why}: start one with `make services`, or set PREFECT_API_URL"
        ) from None
    started = time.monotonic()
    print(f"spec valid; submitting a run of {ns.deployment} ({api.api_url})", flush=True)
    run_id = api.run_deployment(ns.deployment, {"spec": spec})
    run = api.flow_run(run_id)
    page = f"{api.api_url.removesuffix('/api')}/runs/flow-run/{run_id}"
    print(f"started {ns.deployment} run {run['name']} ({run_id}) for {spec['model']}\n  {page}")
    if not ns.watch:
        return 0

    def say(now: dict[str, Any], line: str | None) -> None:
        waited = time.monotonic() - started
        print(f"  … {waited:5.0f} s {now['state_name'].lower()}: {line or 'waiting for a worker'}",
              flush=True)  # fmt: skip

    final = api.wait(run_id, ns.timeout_s, on_progress=say)
    record = api.markdown(run_id, f"release-{slug(name)}")
    verdict = verdict_of(record)
    took = time.monotonic() - started
    if final["state_type"] != "COMPLETED" or verdict is None:
        print(f"run {final['name']} ended {final['state_name']} after {took:.0f} s with no "
              f"verdict; its log: {page}")  # fmt: skip
        return 1
    print(f"{verdict.upper()} after {took:.0f} s: {name}")
    for reason in reasons_of(record):
        print(f"  - {reason}")
    print(f"  record: {page}?tab=Artifacts")
    return 0 if verdict == "promoted" else NOT_PROMOTED
