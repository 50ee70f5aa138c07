"""The retrain flow for real: MLflow sqlite, a Prefect test server, a user-style command
trainer fed by a capture directory; a failing trainer registers nothing; the demo's trainer
entry point on a real request file."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest
from prefect.testing.utilities import prefect_test_harness

from infra.demo_model import trainer
from infra.demo_model.retrain import TRAIN_CONFIG_TAG
from infra.demo_model.train import TrainConfig
from infra.errors import TrainerFailedError
from infra.registry.base import CHALLENGER, CHAMPION
from infra.registry.fake import FakeRegistry
from infra.registry.mlflow_registry import MlflowRegistry
from infra.training.candidate import checked_model
from infra.training.request import ChampionRef, DataRef, TrainerResult, TrainingRequest, Trigger
from infra.training.spec import RetrainSpec
from validation.golden import TaskSpec

pytestmark = pytest.mark.integration

COPY = ("import json, os, shutil, sys; r = json.load(open(sys.argv[1])); "
        "shutil.copytree(os.environ['FIXTURE_MODEL'], os.path.join(r['output_dir'], 'model')); "
        "json.dump({'model_dir': 'model', 'metrics': {'loss': 0.25}}, "
        "open(os.path.join(r['output_dir'], 'result.json'), 'w'))")  # fmt: skip


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield


@pytest.fixture
def stack(tmp_path: Path, untrained_model: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("CANARYFLOW_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("CANARYFLOW_TRACKING_URI", uri)
    champion = tmp_path / "champion"
    shutil.copytree(untrained_model, champion)
    (champion / "generation_config.json").write_text(json.dumps({"max_new_tokens": 9}))
    (champion / "golden.jsonl").write_text(json.dumps({"prompt": "7+7", "answer": "14"}) + "\n")
    registry = MlflowRegistry(uri)
    registry.register("team-model", champion, alias=CHAMPION)
    capture = tmp_path / "capture"
    capture.mkdir()
    now = time.time()
    lines = [_record(f"{i}+{i}", now, f"user-{i}") for i in range(60)]
    lines += [_record("1+1", now, f"cf-load-{i}") for i in range(30)]
    (capture / "capture-stable-h-1.jsonl").write_text("".join(lines))
    return registry, capture, untrained_model


def _record(prompt: str, ts: float, rid: str) -> str:
    stamp = pd.Timestamp(ts, unit="s", tz="UTC").isoformat()
    return json.dumps({"ts": stamp, "request_id": rid, "variant": "stable", "status": 200,
                       "prompt": prompt, "completion": "x",
                       "messages": [{"role": "user", "content": prompt}]}) + "\n"  # fmt: skip


def spec(capture: Path, script: str, fixture: Path) -> RetrainSpec:
    return RetrainSpec.model_validate({
        "model_name": "team-model", "capture_dir": str(capture), "release": False,
        "min_requests": 40,
        "trainer": {"kind": "command", "command": [sys.executable, "-c", script, "{request}"],
                    "env": {"FIXTURE_MODEL": str(fixture)}, "timeout_s": 120},
    })  # fmt: skip


def test_a_user_trainer_retrains_from_captured_traffic(harness: None, stack: Any) -> None:
    from flows.retrain import retrain

    registry, capture, fixture = stack
    drift = {"model": "team-model", "drift_share": 0.8, "reason": "prompt length drifted"}
    version = retrain(spec(capture, COPY, fixture), drift=drift, event_id="evt-1")
    mv = registry.get("team-model", version)
    assert version == "2"
    assert CHALLENGER in mv.aliases
    assert registry.get_by_alias("team-model", CHAMPION).version == "1"
    assert mv.tags["canaryflow.parent_version"] == "1"
    assert mv.tags["canaryflow.trigger"] == "drift:evt-1"
    assert mv.tags["canaryflow.data_rows"].endswith("holdout")
    run = registry.client.get_run(mv.tags["canaryflow.retrain_run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["loss"] == 0.25
    contexts = {i.dataset.name.split("-")[0]: i.dataset.digest for i in run.inputs.dataset_inputs}
    assert set(contexts) == {"training", "holdout"}
    assert mv.tags["canaryflow.data_digest"].startswith(contexts["training"])
    print(
        f"lineage of v{version}: "
        + json.dumps({k: v for k, v in mv.tags.items() if k.startswith("canaryflow.")}, indent=1)
    )


USER_TRAINER = Path(__file__).parents[1] / "fixtures" / "user_trainer.py"


def test_a_team_fine_tuning_script_is_a_trainer(harness: None, stack: Any) -> None:
    """tests/fixtures/user_trainer.py (plain transformers SFT, no canaryflow import) fine-tunes
    the champion on the exported users' rows; its output is checked and registered."""
    from flows.retrain import retrain

    registry, capture, fixture = stack
    script = RetrainSpec.model_validate({
        **spec(capture, COPY, fixture).model_dump(mode="json"),
        "trainer": {"kind": "command", "timeout_s": 300,
                    "command": [sys.executable, str(USER_TRAINER), "{request}", "--steps", "3"]},
    })  # fmt: skip
    version = retrain(script, drift={"model": "team-model", "drift_share": 0.7}, event_id="e2")
    mv = registry.get("team-model", version)
    assert mv.tags["team.trainer"] == "user-sft"  # the trainer's own tag, beside the lineage
    assert mv.tags["canaryflow.parent_version"] == "1"
    assert "user_trainer.py" in mv.tags["canaryflow.trainer"]
    run = registry.client.get_run(mv.tags["canaryflow.retrain_run_id"])
    assert run.data.metrics["train_rows"] > 0  # the users' rows only: cf-load ones are not in
    assert "holdout_loss_after" in run.data.metrics


def test_a_failing_trainer_registers_and_releases_nothing(harness: None, stack: Any) -> None:
    from flows.retrain import retrain

    registry, capture, fixture = stack
    failing = "import sys; print('no GPU here', file=sys.stderr); sys.exit(2)"
    with pytest.raises(TrainerFailedError, match=r"exited with 2(.|\n)*no GPU here"):
        retrain(spec(capture, failing, fixture))
    champion = registry.get_by_alias("team-model", CHAMPION)
    assert champion.version == "1"
    assert CHALLENGER not in champion.aliases
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name("canaryflow-retrain").experiment_id]
    )
    assert runs[0].info.status == "FAILED"
    assert "TrainerFailedError" in runs[0].data.tags["canaryflow.error"]


def test_the_demo_trainer_widens_its_task_from_the_export_and_answers(tmp_path: Path) -> None:
    """The entry point the retrain deployment runs: request in, checked model dir out."""
    prompts = [f"{a}+{b}" for a, b in zip(range(100, 160), range(120, 180), strict=True)]
    pd.DataFrame({"prompt": prompts, "completion": ["?"] * 60}).to_parquet(tmp_path / "t.pq")
    tiny = TrainConfig(steps=3, n_heldout=10, batch_size=8)
    (tmp_path / "out").mkdir()
    data = DataRef(
        train=str(tmp_path / "t.pq"),
        holdout=str(tmp_path / "t.pq"),
        digest="0" * 64,
        window_start=0,
        window_end=1,
        n_train=60,
        n_holdout=0,
        columns=["prompt"],
    )
    request = TrainingRequest(
        model_name="tiny-chat", data=data, trigger=Trigger(kind="schedule"),
        champion=ChampionRef(version="1", tags={TRAIN_CONFIG_TAG: tiny.model_dump_json()}),
        output_dir=str(tmp_path / "out"),
    ).write(tmp_path / "request.json")  # fmt: skip
    assert trainer.main([str(request), "--steps", "2"]) == 0
    result = TrainerResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    config = TrainConfig.model_validate_json(result.tags[TRAIN_CONFIG_TAG])
    assert config.task == TaskSpec(min_operand=0, max_operand=179)
    assert config.steps == 2
    assert 0 <= result.metrics["exact_match"] <= 1
    model = checked_model(
        TrainerResult(model_dir=str(tmp_path / "out" / "model")), FakeRegistry(), tmp_path,
        flavor="cpu", trainer="demo",
    )  # fmt: skip
    assert model.report.architecture == "LlamaForCausalLM"
    assert json.loads((tmp_path / "out" / "result.json").read_text())["model_dir"] == "model"
