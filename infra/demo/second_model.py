"""The demo's second model: a Qwen2 JSON extractor, released as a team with its own model,
its own evaluation set and its own target would release it. Used by infra/demo/__main__.py.

Nothing of the arithmetic demo applies here: answers are JSON objects (exact match is the
wrong scorer: the model writes the right fields in its own key order), so the release judges
with `json_schema` + `fields`; it serves on target `extract-json` with ports of its own
(`target_settings`), beside tiny-chat's default target, on the same Prefect and MLflow.

    v1: trained (600 steps) → first deploy on extract-json → promoted
    v2: a short fine-tune of v1 on Python-repr targets (a training change that broke the
        output format), offline gate off → canary → its quality check fails → rolled back
    then its drift → retrain → release chain (infra/demo/json_chain.py): promoted
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from infra.demo.json_chain import json_chain
from infra.demo.story import DemoContext, heartbeat, say
from infra.demo_model_json.train import JsonTrainConfig, train, write_eval_set
from infra.settings import Settings
from validation.evaluation import read_file
from validation.evaluation.mlflow_scoring import register_dataset

JSON_NAME = "extract-json"
JSON_DATASET = "extract-json-fields"
JSON_TARGET: dict[str, Any] = {
    "name": JSON_NAME, "router_port": 8790, "haproxy_metrics_port": 8791,
    "slot_ports": [8792, 8793], "prometheus_port": 8794,
}  # fmt: skip
JSON_SCORERS: list[dict[str, Any]] = [
    {"kind": "json_schema"},
    {"kind": "fields", "pass_at": 0.75},
]
BROKEN_TUNE = {"corrupt": 1.0, "steps": 60, "lr": 1e-3}
"""The fine-tune that breaks v1's JSON: 60 steps on targets written as Python reprs."""


def register_json_set(settings: Settings, config: JsonTrainConfig) -> str:
    """The held-out sentences of `config`'s seed, registered as JSON_DATASET; its name."""
    path = write_eval_set(config, settings.state / "evaluation" / f"{JSON_DATASET}.jsonl")
    register_dataset(read_file(path, JSON_DATASET), settings.mlflow_uri(), name=JSON_DATASET)
    return JSON_DATASET


def json_evaluation(**overrides: Any) -> dict[str, Any]:
    """The `evaluation` block of an extract-json release: its set, the JSON scorers."""
    return {"dataset": JSON_DATASET, "scorers": JSON_SCORERS, "threshold": 0.7,
            "margin": 0.05, **overrides}  # fmt: skip


def train_json(label: str, config: JsonTrainConfig, out: Path) -> Path:
    """Train into `out` (a fresh directory), print how it did offline; the directory."""
    if out.exists():  # what an earlier demo trained: train again, the same way
        shutil.rmtree(out)
    started = time.monotonic()
    what = f"fine-tune of {Path(config.base).name}" if config.base else "from scratch"
    with heartbeat(f"{label}: train {JSON_NAME} ({config.steps} steps, {what})"):
        r = train(config, out)
    say(
        f"  {label}: JSON valid {r.json_valid:.0%}, fields right {r.field_accuracy:.0%} on its "
        f"held-out sentences, offline ({config.steps} steps, {time.monotonic() - started:.0f} s)"
    )
    return out


def json_story(ctx: DemoContext, canary: dict[str, Any]) -> dict[str, str]:
    """Release the good JSON model, then a fine-tune that broke it; {step: verdict}."""
    config = JsonTrainConfig()
    say(
        f"  evaluation set: MLflow dataset {register_json_set(ctx.settings, config)} "
        f"(scorers {', '.join(s['kind'] for s in JSON_SCORERS)})"
    )
    models = ctx.settings.state / "demo" / "models"
    good = train_json("json v1", config, models / f"{JSON_NAME}-v1")
    spec = {"model": str(good), "registered_name": JSON_NAME, "evaluation": json_evaluation(),
            "target_settings": JSON_TARGET}  # fmt: skip
    seen = {"json v1": ctx.release("json v1", spec, name=JSON_NAME).verdict}

    say("\n== 8. json v2: a fine-tune that broke the output format (it answers Python reprs),")
    say("        offline gate switched off, so only the canary can stop it")
    broken = train_json("json v2", config.model_copy(update={**BROKEN_TUNE, "base": str(good)}),
                        models / f"{JSON_NAME}-v2")  # fmt: skip
    spec = {
        "model": str(broken),
        "registered_name": JSON_NAME,
        "target_settings": JSON_TARGET,
        "evaluation": json_evaluation(threshold=0.0, margin=1.0),
        "canary": canary,
    }
    seen["json v2"] = ctx.release("json v2", spec, name=JSON_NAME).verdict
    seen.update(json_chain(ctx, JSON_NAME, JSON_TARGET, JSON_DATASET))
    say(
        f"  {JSON_NAME} router: http://127.0.0.1:{JSON_TARGET['router_port']}/v1 "
        f"(key: {ctx.settings.state / 'targets' / JSON_NAME / 'secrets' / 'api-key'})"
    )
    return seen
