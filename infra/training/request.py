"""The trainer contract: one request file in, a model directory or a registered version out.

canaryflow writes `request.json` (a `TrainingRequest`) into a fresh work directory and starts
the trainer with its path (a command: `{request}` in argv; a deployment: the parsed JSON as
its flow parameter `request`). The request holds:

    model_name        the registered model being retrained
    champion          {uri, version, model_dir, tags}: the version serving now (all null on
                      a first training) and a verified local copy of its files to start from
    data              the training data export (infra/training/export.py): `train` and
                      `holdout` Parquet paths, `digest` (sha256 over both files), window,
                      row counts and columns (prompt, messages, completion, feedback, …)
    trigger           {kind: "drift" | "schedule", event: the drift evidence or null}
    output_dir        where the trainer writes (exists, empty)
    parameters        free-form trainer parameters recorded in lineage (argv, env names, …)

The trainer answers in `output_dir`, in one of three ways:

    output_dir/result.json  {"model_dir": "model"}            # a directory (relative to
                                                              # output_dir, or absolute)
    output_dir/result.json  {"model_uri": "models:/NAME/7"}   # it registered a version itself
    output_dir/ holds the model files and no result.json      # output_dir is the model

`result.json` may add `"metrics": {"name": number}` (logged on the retrain's MLflow run) and
`"tags": {"key": "value"}` (written on the registered version beside the lineage tags, which
win on a clash: a trainer cannot forge its own lineage). A model directory must pass
`validation.artifact.check_artifact` (config, weights, tokenizer, chat template) before it is
registered; a registered version is downloaded and checked the same way. A command exits 0
when done; anything else is a failure whose log tail is quoted in `TrainerFailedError`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from infra.errors import TrainerOutputError

REQUEST_FILE = "request.json"
RESULT_FILE = "result.json"
REQUEST_SCHEMA = 1
# Also set for a command trainer, for programs that prefer the environment to argv.
ENV_REQUEST = "CANARYFLOW_TRAINING_REQUEST"
ENV_OUTPUT = "CANARYFLOW_TRAINING_OUTPUT"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChampionRef(_Model):
    """The version the candidate replaces (all None when nothing is champion yet)."""

    uri: str | None = None
    version: str | None = None
    model_dir: str | None = Field(None, description="Verified local copy of its files.")
    tags: dict[str, str] = Field(default_factory=dict)


class DataRef(_Model):
    """Where the exported training data is and what it is (TrainingData.ref())."""

    train: str
    holdout: str
    digest: str = Field(description="sha256 over the train and holdout Parquet files.")
    window_start: float
    window_end: float
    n_train: int
    n_holdout: int
    columns: list[str]


class Trigger(_Model):
    """Why this retrain runs: a drift event (its Prefect event id and evidence) or the cron."""

    kind: Literal["drift", "schedule"]
    event_id: str | None = None
    event: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        """`drift:<event id>` (or `drift` when the id is unknown), or `schedule`."""
        if self.kind == "schedule":
            return "schedule"
        return f"drift:{self.event_id}" if self.event_id else "drift"


class TrainingRequest(_Model):
    """What a trainer is asked to do (written as request.json)."""

    schema_version: int = REQUEST_SCHEMA
    model_name: str
    champion: ChampionRef
    data: DataRef
    trigger: Trigger
    output_dir: str
    parameters: dict[str, Any] = Field(default_factory=dict)

    def write(self, path: Path) -> Path:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> TrainingRequest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class TrainerResult(_Model):
    """result.json: a model directory or a registered version, and optional metrics."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_dir: str | None = None
    model_uri: str | None = Field(None, pattern=r"^models:/[A-Za-z0-9_.-]+/\d+$")
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one(self) -> TrainerResult:
        if (self.model_dir is None) == (self.model_uri is None):
            raise ValueError("name exactly one of model_dir and model_uri")
        return self

    def write(self, output_dir: Path) -> Path:
        return _write(output_dir / RESULT_FILE, self.model_dump(exclude_none=True))


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def read_result(output_dir: Path, trainer: str) -> TrainerResult:
    """The trainer's answer: result.json, or output_dir itself when it holds model files."""
    path = output_dir / RESULT_FILE
    if not path.is_file():
        if output_dir.is_dir() and any(output_dir.iterdir()):
            return TrainerResult(model_dir=str(output_dir))
        raise TrainerOutputError(
            f"{trainer} finished but left nothing in {output_dir}: write the model files there, "
            f"or {RESULT_FILE} naming model_dir or model_uri (infra/training/request.py)"
        )
    try:
        result = TrainerResult.model_validate_json(path.read_text(encoding="utf-8"))
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise TrainerOutputError(
            f"{trainer} wrote a {RESULT_FILE} canaryflow cannot read ({problems}): it must be "
            'a JSON object like {"model_dir": "model"} or {"model_uri": "models:/NAME/7"}'
        ) from None
    if result.model_dir is not None and not Path(result.model_dir).is_absolute():
        result = result.model_copy(update={"model_dir": str(output_dir / result.model_dir)})
    return result
