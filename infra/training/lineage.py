"""Lineage: what links a retrained version to its data, its parent, its trigger and its run.

    tags = lineage_tags(champion, data, trigger, trainer, run_id, trainer_tags)
    run_id = RetrainRun.open(tracking_uri, model_name, trigger).run_id
    run.log_data(data); run.finish(version, metrics) / run.fail(error)

Version tags (the MLflow UI's model version page shows them; the release later adds
`canaryflow.image`, `canaryflow.decision` and `canaryflow.release_run_id`, tasks/report.py):

    canaryflow.parent_version   champion version it was trained from ("none" on a first)
    canaryflow.parent_uri       models:/NAME/VERSION of that champion
    canaryflow.data_digest      sha256 of the train + holdout Parquet files
    canaryflow.data_window      window start/end, UTC ISO-8601
    canaryflow.data_rows        "<train> train + <holdout> holdout"
    canaryflow.trigger          drift:<Prefect event id> | drift | schedule
    canaryflow.trainer          the trainer in one line
    canaryflow.trainer_params   JSON of what ran (argv, env names, timeout / deployment)
    canaryflow.retrain_run_id   the retrain's MLflow run (experiment canaryflow-retrain)

The run carries the export as an input dataset (`mlflow.data.from_pandas` with the export's
digest, context `training`, and the holdout as context `holdout`), the trainer as params,
and the trainer's metrics.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.tracking import experiment_id
from infra.training.export import TrainingData
from infra.training.request import ChampionRef, Trigger

EXPERIMENT = "canaryflow-retrain"
PARENT_TAG = "canaryflow.parent_version"
DATA_DIGEST_TAG = "canaryflow.data_digest"
RETRAIN_RUN_TAG = "canaryflow.retrain_run_id"
TAG_CHARS = 5000  # MLflow's limit on a model version tag value


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def lineage_tags(
    champion: ChampionRef,
    data: TrainingData,
    trigger: Trigger,
    trainer: str,
    trainer_params: Mapping[str, str],
    run_id: str,
    trainer_tags: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The version's tags: the trainer's own, then the lineage (which wins on a clash)."""
    return {
        **(trainer_tags or {}),
        PARENT_TAG: champion.version or "none",
        "canaryflow.parent_uri": champion.uri or "none",
        DATA_DIGEST_TAG: data.digest,
        "canaryflow.data_window": f"{_iso(data.since)}/{_iso(data.until)}",
        "canaryflow.data_rows": f"{len(data.train)} train + {len(data.holdout)} holdout",
        "canaryflow.trigger": trigger.label,
        "canaryflow.trainer": trainer[:TAG_CHARS],
        "canaryflow.trainer_params": json.dumps(dict(trainer_params), sort_keys=True)[:TAG_CHARS],
        RETRAIN_RUN_TAG: run_id,
    }


class RetrainRun:
    """The retrain's MLflow run (MlflowClient, no fluent global state)."""

    def __init__(self, client: Any, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    @classmethod
    def open(cls, tracking_uri: str, model_name: str, trigger: Trigger) -> RetrainRun:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri)
        run = client.create_run(experiment_id(client, EXPERIMENT, tracking_uri), tags={
            "mlflow.runName": f"retrain-{model_name}",
            "canaryflow.model_name": model_name,
            "canaryflow.trigger": trigger.label,
        })  # fmt: skip
        return cls(client, str(run.info.run_id))

    def log_data(self, data: TrainingData, champion: ChampionRef) -> None:
        from mlflow.data.pandas_dataset import from_pandas
        from mlflow.entities import DatasetInput, InputTag

        inputs = []
        for context, frame, path in (("training", data.train, data.train_path),
                                     ("holdout", data.holdout, data.holdout_path)):  # fmt: skip
            ds = from_pandas(frame, source=path.resolve().as_uri(),
                             name=f"{context}-{data.digest[:12]}",
                             digest=data.digest[:32])  # fmt: skip
            tag = InputTag(key="mlflow.data.context", value=context)
            inputs.append(DatasetInput(dataset=ds._to_mlflow_entity(), tags=[tag]))
        self.client.log_inputs(self.run_id, datasets=inputs)
        for key, value in {DATA_DIGEST_TAG: data.digest, PARENT_TAG: champion.version or "none",
                           "canaryflow.data_summary": data.summary()}.items():  # fmt: skip
            self.client.set_tag(self.run_id, key, value)

    def log_trainer(self, trainer: str, params: Mapping[str, str]) -> None:
        self.client.log_param(self.run_id, "trainer", trainer[:6000])
        for key, value in params.items():
            self.client.log_param(self.run_id, f"trainer.{key}", str(value)[:6000])

    def finish(self, uri: str, metrics: Mapping[str, float], request: Path | None) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value)
        if request is not None and request.is_file():
            self.client.log_artifact(self.run_id, str(request), artifact_path="trainer")
        self.client.set_tag(self.run_id, "canaryflow.candidate", uri)
        self.client.set_terminated(self.run_id, "FINISHED")

    def fail(self, error: BaseException) -> None:
        self.client.set_tag(self.run_id, "canaryflow.error",
                            f"{type(error).__name__}: {error}"[:5000])  # fmt: skip
        self.client.set_terminated(self.run_id, "FAILED")
