"""The plain steps of one retrain, in the order the flow calls them (tasks/retrain.py wraps them).

    job = RetrainJob.create(work_root, spec.model_name, trigger_of(drift, event_id))
    job = with_champion(job, registry)                  # ChampionRef + a verified local copy
    data = export_window(capture_dir, job.data_dir, …)  # infra/training/export.py
    request = write_request(job, data, trainer)         # request.json + empty output dir
    result = trainer.train(request, job.output_dir)     # infra/training/trainers.py
    model = checked_model(result, registry, …)          # infra/training/candidate.py

Nothing here is specific to a model: the trainer decides what "training" means.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infra.errors import ModelVersionNotFoundError
from infra.registry.base import CHAMPION, ModelRegistry
from infra.training.export import TrainingData
from infra.training.request import ChampionRef, TrainingRequest, Trigger
from infra.training.trainers import Trainer


@dataclass(frozen=True)
class RetrainJob:
    """One retrain's identity and places: its work directory, champion, trigger, MLflow run."""

    model_name: str
    work_dir: Path
    trigger: Trigger
    champion: ChampionRef = field(default_factory=ChampionRef)
    run_id: str = ""

    @classmethod
    def create(cls, work_root: Path, model_name: str, trigger: Trigger) -> RetrainJob:
        stamp = time.strftime("%Y%m%dt%H%M%Sz", time.gmtime())
        work = work_root / f"{model_name}-{stamp}-{uuid.uuid4().hex[:6]}"
        work.mkdir(parents=True)
        return cls(model_name, work, trigger)

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def output_dir(self) -> Path:
        return self.work_dir / "output"

    @property
    def request_path(self) -> Path:
        return self.work_dir / "request.json"


def trigger_of(drift: Mapping[str, Any] | None, event_id: str | None) -> Trigger:
    """A drift event's evidence (and its Prefect event id when the trigger passed it)."""
    if not drift:
        return Trigger(kind="schedule")
    usable_id = event_id if event_id and "{{" not in event_id else None
    return Trigger(kind="drift", event_id=usable_id, event=dict(drift))


def with_champion(job: RetrainJob, registry: ModelRegistry) -> RetrainJob:
    """The job with the champion's reference and files (none yet: all fields None)."""
    try:
        mv = registry.get_by_alias(job.model_name, CHAMPION)
    except ModelVersionNotFoundError:
        return job
    model_dir = registry.download(mv.name, mv.version, job.work_dir / "champion")
    ref = ChampionRef(uri=mv.uri, version=mv.version, model_dir=str(model_dir),
                      tags=dict(mv.tags))  # fmt: skip
    return replace(job, champion=ref)


def evaluation_prompts(files: Iterable[Path]) -> list[str]:
    """Prompts of evaluation rows (JSONL): `prompt`, `inputs.prompt`, or the last user
    message of `inputs.messages` (the evaluation-row shape of CONTRACTS.md)."""
    prompts: list[str] = []
    for path in files:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and (prompt := _row_prompt(row)) is not None:
                prompts.append(prompt)
    return prompts


def _row_prompt(row: dict[str, Any]) -> str | None:
    if isinstance(row.get("prompt"), str):
        return str(row["prompt"])
    inputs = row.get("inputs")
    if not isinstance(inputs, dict):
        return None
    if isinstance(inputs.get("prompt"), str):
        return str(inputs["prompt"])
    users = [m.get("content") for m in inputs.get("messages") or []
             if isinstance(m, dict) and m.get("role") == "user"]  # fmt: skip
    return users[-1] if users and isinstance(users[-1], str) else None


def write_request(job: RetrainJob, data: TrainingData, trainer: Trainer) -> Path:
    """request.json for the trainer, with an empty output directory beside it."""
    job.output_dir.mkdir()
    request = TrainingRequest(model_name=job.model_name, champion=job.champion, data=data.ref(),
                              trigger=job.trigger, output_dir=str(job.output_dir),
                              parameters={"trainer": trainer.describe(),
                                          **trainer.parameters()})  # fmt: skip
    return request.write(job.request_path)
