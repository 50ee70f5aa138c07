"""Lineage on the registered candidate (FakeRegistry, FakeTrainer), what a bad trainer output
leaves behind (nothing), and the release record's image tag beside its verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from infra.controller.record import ReleaseOutcome
from infra.errors import TrainerFailedError, TrainerOutputError
from infra.registry.base import CHALLENGER, CHAMPION
from infra.registry.fake import FakeRegistry
from infra.training.candidate import checked_model, register_candidate
from infra.training.export import TrainingData
from infra.training.fake import FakeTrainer
from infra.training.job import RetrainJob, trigger_of, with_champion, write_request
from infra.training.lineage import lineage_tags
from infra.training.request import TrainingRequest
from tasks.report import _tag_version

DRIFT = {"model": "m", "drift_share": 0.75, "window_start": 100.0, "window_end": 200.0}


def training_data(tmp_path: Path) -> TrainingData:
    train = pd.DataFrame({"prompt": ["a", "b"], "completion": ["1", "2"]})
    held = pd.DataFrame({"prompt": ["c"], "completion": ["3"]})
    return TrainingData(tmp_path / "train.parquet", tmp_path / "holdout.parquet", "d" * 64,
                        1_764_000_000.0, 1_764_003_600.0, train, held)  # fmt: skip


@pytest.fixture
def registry(untrained_model: Path, tmp_path: Path) -> FakeRegistry:
    """A registry whose champion (v1) is another model than the fixture the trainer copies."""
    reg = FakeRegistry()
    champion = tmp_path / "champion"
    champion.mkdir()
    for f in untrained_model.iterdir():
        (champion / f.name).write_bytes(f.read_bytes())
    (champion / "generation_config.json").write_text(json.dumps({"max_new_tokens": 9}))
    reg.register("m", champion, {"team.config": "v1"}, alias=CHAMPION)
    return reg


def retrain(registry: FakeRegistry, trainer: FakeTrainer, tmp_path: Path) -> Any:
    job = RetrainJob.create(tmp_path / "work", "m", trigger_of(DRIFT, "evt-42"))
    job = with_champion(job, registry)
    data = training_data(tmp_path)
    request = write_request(job, data, trainer)
    result = trainer.train(request, job.output_dir)
    model = checked_model(result, registry, job.work_dir, flavor="cpu",
                          trainer=trainer.describe())  # fmt: skip
    tags = lineage_tags(job.champion, data, job.trigger, trainer.describe(),
                        trainer.parameters(), "run-7", result.tags)  # fmt: skip
    return register_candidate(registry, "m", model, tags, champion_version=job.champion.version)


def test_the_candidate_carries_its_lineage(
    registry: FakeRegistry, untrained_model: Path, tmp_path: Path
) -> None:
    forged = {"team.lr": "1e-4", "canaryflow.parent_version": "forged"}
    trainer = FakeTrainer(untrained_model, tags=forged)
    mv = retrain(registry, trainer, tmp_path)
    assert mv.version == "2"
    assert CHALLENGER in mv.aliases
    assert registry.get_by_alias("m", CHAMPION).version == "1"  # the champion is untouched
    assert {k: mv.tags[k] for k in mv.tags if k != "canaryflow.digest"} == {
        "team.lr": "1e-4",
        "canaryflow.parent_version": "1",  # lineage wins over what the trainer wrote
        "canaryflow.parent_uri": "models:/m/1",
        "canaryflow.data_digest": "d" * 64,
        "canaryflow.data_window": "2025-11-24T16:00:00+00:00/2025-11-24T17:00:00+00:00",
        "canaryflow.data_rows": "2 train + 1 holdout",
        "canaryflow.trigger": "drift:evt-42",
        "canaryflow.trainer": "fake trainer",
        "canaryflow.trainer_params": json.dumps(trainer.parameters(), sort_keys=True),
        "canaryflow.retrain_run_id": "run-7",
    }
    (request,) = trainer.requests  # what the trainer was told
    assert request.champion.version == "1"
    assert request.champion.tags["team.config"] == "v1"
    assert Path(str(request.champion.model_dir)).joinpath("config.json").is_file()
    assert request.trigger.event == DRIFT
    assert request.data.digest == "d" * 64


def test_a_version_the_trainer_registered_itself_is_tagged_too(
    registry: FakeRegistry, untrained_model: Path, tmp_path: Path
) -> None:
    own = registry.register("m", untrained_model, {"by": "team"})
    mv = retrain(registry, FakeTrainer(model_uri=own.uri), tmp_path)
    assert mv.version == own.version
    assert mv.tags["by"] == "team"
    assert mv.tags["canaryflow.trigger"] == "drift:evt-42"
    assert CHALLENGER in mv.aliases


def test_the_champions_own_files_are_not_a_candidate(
    registry: FakeRegistry, tmp_path: Path
) -> None:
    champion_copy = tmp_path / "copy"
    registry.download("m", "1", champion_copy)
    with pytest.raises(TrainerOutputError, match="the champion itself"):
        retrain(registry, FakeTrainer(champion_copy), tmp_path)
    assert CHALLENGER not in registry.get("m", "1").aliases
    assert "canaryflow.parent_version" not in registry.get("m", "1").tags


def test_a_failed_or_broken_trainer_registers_nothing(
    registry: FakeRegistry, untrained_model: Path, tmp_path: Path
) -> None:
    before = len(registry.calls)
    with pytest.raises(TrainerFailedError):
        retrain(registry, FakeTrainer(error=TrainerFailedError("exit 1")), tmp_path / "a")
    (untrained_model / "config.json").unlink()
    with pytest.raises(TrainerOutputError, match=r"lacks config\.json"):
        retrain(registry, FakeTrainer(untrained_model), tmp_path / "b")
    writes = {"register", "set_alias", "set_tags"}
    assert not [c for c in registry.calls[before:] if c[0] in writes]


def test_a_schedule_run_says_so() -> None:
    assert trigger_of(None, None).label == "schedule"
    assert trigger_of(DRIFT, "{{ event.id }}").label == "drift"  # an unrendered template
    assert TrainingRequest.model_json_schema()["required"]


class RecordingClient:
    """MlflowClient at the boundary _tag_version uses."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[key] = value


def test_the_release_record_adds_the_image_beside_the_verdict() -> None:
    client = RecordingClient()
    outcome = ReleaseOutcome(release_id="r1", model_name="m", version="2", verdict="promoted",
                             image="canaryflow/serving:cpu-0123456789abcdef")  # fmt: skip
    _tag_version(client, outcome, "run-9")
    assert client.tags == {
        "canaryflow.release_run_id": "run-9",
        "canaryflow.decision": "promoted",
        "canaryflow.image": "canaryflow/serving:cpu-0123456789abcdef",
    }
