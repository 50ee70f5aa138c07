"""The demo's evaluation set: its arithmetic held-out problems, registered as an MLflow
evaluation dataset like any user's set, and named by every demo release spec.

    register_demo_set(settings)          # -> dataset name (a no-op when it already exists)
    demo_evaluation(threshold=0.0)       # the `evaluation` block of a demo ReleaseSpec

The rows are the default TrainConfig's held-out split (seeded, never trained on), so every
demo model version is judged on the same rows; the demo's candidates also carry a
golden.jsonl, which the release ignores (allow_candidate_golden is not set).
"""

from __future__ import annotations

import json
from typing import Any

from infra.demo_model.train import TrainConfig
from infra.settings import Settings
from validation.evaluation import read_file
from validation.evaluation.mlflow_scoring import register_dataset
from validation.golden import split

DATASET = "tiny-chat-arithmetic"
SCORERS = [{"kind": "exact"}]
"""Integer answers: exact match is the right scorer for this task (and only for this one)."""


def demo_rows(config: TrainConfig | None = None) -> list[dict[str, Any]]:
    config = config or TrainConfig()
    _, heldout = split(config.task, config.n_heldout, config.seed)
    return [{"inputs": {"messages": [{"role": "user", "content": ex.prompt}]},
             "expectations": {"expected_response": ex.answer},
             "tags": {"task": "arithmetic"}} for ex in heldout]  # fmt: skip


def register_demo_set(settings: Settings) -> str:
    """Write the rows under the state dir and register them as DATASET; its name."""
    path = settings.state / "evaluation" / f"{DATASET}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in demo_rows()), encoding="utf-8")
    register_dataset(read_file(path, DATASET), settings.mlflow_uri(), name=DATASET)
    return DATASET


def demo_evaluation(**overrides: Any) -> dict[str, Any]:
    """The `evaluation` block of a demo release: the registered set, exact match."""
    return {"dataset": DATASET, "scorers": SCORERS, "threshold": 0.8, "margin": 0.05,
            **overrides}  # fmt: skip
