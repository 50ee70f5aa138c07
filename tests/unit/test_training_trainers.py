"""The trainer interface: real tiny commands (python -c), their failures, the output checks,
and the deployment trainer against an injected run_deployment."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prefect.exceptions import ObjectNotFound
from prefect.states import Completed, Failed, Running
from pydantic import ValidationError

from infra.errors import (
    TrainerFailedError,
    TrainerOutputError,
    TrainerStartError,
    TrainerTimeoutError,
)
from infra.registry.fake import FakeRegistry
from infra.training.candidate import checked_model
from infra.training.request import (
    ChampionRef,
    DataRef,
    TrainerResult,
    TrainingRequest,
    Trigger,
)
from infra.training.spec import CommandTrainer, DeploymentTrainer, RetrainSpec
from infra.training.trainers import CommandRunner, DeploymentRunner, make_trainer

# A user-style trainer: reads the request, "trains" by copying the fixture model named in
# its environment, answers with result.json. Everything a real one does except the maths.
COPY_TRAINER = """
import json, os, shutil, sys
request = json.load(open(sys.argv[1]))
out = request["output_dir"]
print("training on", request["data"]["n_train"], "rows from", request["champion"]["uri"])
shutil.copytree(os.environ["FIXTURE_MODEL"], os.path.join(out, "model"))
for name in os.environ.get("DROP", "").split():
    os.remove(os.path.join(out, "model", name))
json.dump({"model_dir": "model", "metrics": {"loss": 0.5}, "tags": {"team.step": "7"}},
          open(os.path.join(out, "result.json"), "w"))
"""


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    (tmp_path / "output").mkdir()
    data = DataRef(train=str(tmp_path / "train.parquet"), holdout=str(tmp_path / "h.parquet"),
                   digest="ab" * 32, window_start=0.0, window_end=60.0, n_train=40,
                   n_holdout=10, columns=["prompt", "completion"])  # fmt: skip
    req = TrainingRequest(model_name="m", champion=ChampionRef(uri="models:/m/1", version="1"),
                          data=data, trigger=Trigger(kind="schedule"),
                          output_dir=str(tmp_path / "output"))  # fmt: skip
    return req.write(tmp_path / "request.json")


def command(script: str, **env: str) -> CommandRunner:
    argv = [sys.executable, "-c", script, "{request}"]
    return CommandRunner(CommandTrainer(command=argv, env=env, timeout_s=60))


def test_a_command_trainer_produces_a_checked_model(
    request_file: Path, untrained_model: Path
) -> None:
    runner = command(COPY_TRAINER, FIXTURE_MODEL=str(untrained_model))
    result = runner.train(request_file, request_file.parent / "output")
    assert result.model_dir == str(request_file.parent / "output" / "model")
    assert result.metrics == {"loss": 0.5}
    assert result.tags == {"team.step": "7"}
    model = checked_model(result, FakeRegistry(), request_file.parent, flavor="cpu",
                          trainer=runner.describe())  # fmt: skip
    assert model.report.architecture == "LlamaForCausalLM"
    assert (
        "training on 40 rows from models:/m/1" in (request_file.parent / "trainer.log").read_text()
    )


def test_a_fine_tune_of_a_champion_copy_is_not_refused_for_the_parents_manifest(
    request_file: Path, untrained_model: Path
) -> None:
    """A trainer that copies the champion's verified files (canaryflow manifest included)
    and rewrites the weights produced a model refused as "differs from its manifest"."""
    from validation import manifest

    manifest.write(untrained_model)  # as the champion's copy in the request has one
    tamper = COPY_TRAINER + (
        "p = os.path.join(out, 'model', 'model.safetensors')\n"
        "data = bytearray(open(p, 'rb').read()); data[-1] ^= 1; open(p, 'wb').write(data)\n"
    )
    runner = command(tamper, FIXTURE_MODEL=str(untrained_model))
    result = runner.train(request_file, request_file.parent / "output")
    registry = FakeRegistry()
    model = checked_model(result, registry, request_file.parent, flavor="cpu",
                          trainer=runner.describe())  # fmt: skip
    assert not (model.model_dir / manifest.MANIFEST_FILE).exists()
    mv = registry.register("m", model.model_dir)  # its own manifest, of its own weights
    assert manifest.verify(model.model_dir) == mv.digest


def test_a_users_own_model_dir_keeps_its_manifest_checked(
    tmp_path: Path, untrained_model: Path
) -> None:
    """Outside the retrain's work directory nothing is removed: a stale manifest there is
    still a named mismatch."""
    from validation import manifest

    manifest.write(untrained_model)
    (untrained_model / "config.json").write_text(
        (untrained_model / "config.json").read_text() + " "
    )
    result = TrainerResult(model_dir=str(untrained_model))
    with pytest.raises(TrainerOutputError, match="differs from its manifest"):
        checked_model(result, FakeRegistry(), tmp_path / "job", flavor="cpu", trainer="t")
    assert (untrained_model / manifest.MANIFEST_FILE).exists()


def test_an_output_dir_holding_the_model_itself_is_the_answer(
    request_file: Path, untrained_model: Path
) -> None:
    script = "import os, shutil; shutil.copytree(os.environ['FIXTURE_MODEL'], "
    script += "os.environ['CANARYFLOW_TRAINING_OUTPUT'], dirs_exist_ok=True)"
    result = command(script, FIXTURE_MODEL=str(untrained_model)).train(
        request_file, request_file.parent / "output"
    )
    assert result.model_dir == str(request_file.parent / "output")


def test_a_missing_executable_cannot_start(request_file: Path) -> None:
    runner = make_trainer(CommandTrainer(command=["no-such-trainer-xyz", "{request}"]))
    with pytest.raises(TrainerStartError, match="'no-such-trainer-xyz' could not be started"):
        runner.train(request_file, request_file.parent / "output")
    bad_cwd = CommandTrainer(command=[sys.executable, "{request}"], cwd="/no/such/dir")
    with pytest.raises(TrainerStartError, match="/no/such/dir"):
        CommandRunner(bad_cwd).train(request_file, request_file.parent / "output")


def test_a_non_zero_exit_quotes_the_log_tail(request_file: Path) -> None:
    script = "import sys; print('loading data'); print('CUDA out of memory', file=sys.stderr); "
    script += "sys.exit(3)"
    with pytest.raises(TrainerFailedError, match=r"exited with 3") as failed:
        command(script).train(request_file, request_file.parent / "output")
    assert "loading data" in str(failed.value)
    assert "CUDA out of memory" in str(failed.value)


def test_a_timeout_kills_the_whole_process_group(request_file: Path, tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = ("import subprocess, sys, time; "
              "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
              f"open({str(pid_file)!r}, 'w').write(str(c.pid)); print('child', flush=True); "
              "time.sleep(60)")  # fmt: skip
    argv = [sys.executable, "-c", script, "{request}"]
    runner = CommandRunner(CommandTrainer(command=argv, timeout_s=2))
    with pytest.raises(TrainerTimeoutError, match="timeout_s=2; its process group was killed"):
        runner.train(request_file, request_file.parent / "output")
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)  # the orphaned child is reaped by init a moment later
    assert not _alive(child), "the trainer's child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


def test_a_model_dir_missing_files_is_named_and_not_registered(
    request_file: Path, untrained_model: Path
) -> None:
    runner = command(COPY_TRAINER, FIXTURE_MODEL=str(untrained_model), DROP="tokenizer.json")
    result = runner.train(request_file, request_file.parent / "output")
    registry = FakeRegistry()
    with pytest.raises(TrainerOutputError, match=r"MissingFileError: .*lacks tokenizer\.json"):
        checked_model(result, registry, request_file.parent, flavor="cpu", trainer="t")
    assert not [c for c in registry.calls if c[0] == "register"]


def test_no_output_or_an_unreadable_result_is_an_output_error(request_file: Path) -> None:
    out = request_file.parent / "output"
    with pytest.raises(TrainerOutputError, match="left nothing in"):
        command("pass").train(request_file, out)
    script = f"open({str(out / 'result.json')!r}, 'w').write('{{\"model\": 1}}')"
    with pytest.raises(TrainerOutputError, match="exactly one of model_dir and model_uri"):
        command(script).train(request_file, out)


def test_the_trainer_spec_refuses_what_cannot_work() -> None:
    with pytest.raises(ValidationError, match=r"must pass the request file"):
        CommandTrainer(command=["train.sh"])
    with pytest.raises(ValidationError, match="at least 1 item"):
        CommandTrainer(command=[])
    with pytest.raises(ValidationError, match=r"trainer\.command\.timeout_s"):
        RetrainSpec.model_validate({"model_name": "team-model", "trainer": {
            "command": ["{request}"], "timeout_s": 0, "kind": "command"}})  # fmt: skip
    with pytest.raises(ValidationError, match="Extra inputs"):
        RetrainSpec.model_validate({"model_name": "team-model", "trainer": {
            "kind": "command", "command": ["{request}"], "shell": True}})  # fmt: skip
    with pytest.raises(ValidationError, match=r"'command' or 'deployment'|does not match"):
        RetrainSpec.model_validate(
            {"model_name": "team-model", "trainer": {"kind": "ssh", "host": "x"}}
        )
    with pytest.raises(ValidationError, match="deployment"):
        RetrainSpec.model_validate(
            {"model_name": "team-model", "trainer": {"kind": "deployment", "deployment": "nodash"}}
        )
    spec = RetrainSpec.model_validate(
        {"model_name": "team-model", "trainer": {"kind": "deployment", "deployment": "ft/gpu"}}
    )
    assert isinstance(spec.trainer, DeploymentTrainer)


class FakeRun:
    """run_deployment at the client boundary: records the call, plays a final state."""

    def __init__(self, state: Any, write: dict[str, Any] | None = None) -> None:
        self.state, self.write, self.calls = state, write, []

    def __call__(self, name: str, **kwargs: Any) -> Any:
        self.calls.append((name, kwargs))
        if isinstance(self.state, Exception):
            raise self.state
        if self.write is not None:
            out = Path(kwargs["parameters"]["request"]["output_dir"])
            TrainerResult.model_validate(self.write).write(out)
        return SimpleNamespace(name="clever-fox", state=self.state)


def test_a_deployment_trainer_gets_the_request_and_its_answer(request_file: Path) -> None:
    run = FakeRun(Completed(), write={"model_uri": "models:/m/9"})
    spec = DeploymentTrainer(deployment="finetune/gpu", timeout_s=30)
    result = DeploymentRunner(spec, run).train(request_file, request_file.parent / "output")
    assert result.model_uri == "models:/m/9"
    ((name, kwargs),) = run.calls
    assert name == "finetune/gpu"
    assert kwargs["timeout"] == 30
    assert kwargs["parameters"]["request"]["data"]["digest"] == "ab" * 32


@pytest.mark.parametrize(("state", "error", "match"), [
    (ObjectNotFound(None), TrainerStartError, "no Prefect deployment 'finetune/gpu'"),
    (Failed(message="OOM on node gpu-1"), TrainerFailedError, "ended FAILED: OOM on node gpu-1"),
    (Running(), TrainerTimeoutError, "not finished after"),
])  # fmt: skip
def test_a_deployment_trainer_that_cannot_start_fails_or_overruns(
    request_file: Path, state: Any, error: type[Exception], match: str
) -> None:
    runner = DeploymentRunner(DeploymentTrainer(deployment="finetune/gpu"), FakeRun(state))
    with pytest.raises(error, match=match):
        runner.train(request_file, request_file.parent / "output")


def test_the_request_file_round_trips(request_file: Path) -> None:
    req = TrainingRequest.read(request_file)
    assert json.loads(request_file.read_text())["data"]["n_train"] == 40
    assert req.trigger.label == "schedule"
    assert Trigger(kind="drift", event_id="e-1").label == "drift:e-1"


def test_a_running_trainer_shows_its_last_log_line(
    request_file: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The retrain flow's log (what make demo follows) said only "running command …" for
    the whole training; it now relays the trainer's progress as it goes."""
    from infra.training import trainers

    monkeypatch.setattr(trainers, "PROGRESS_EVERY_S", 0.2)
    script = (
        "import time\nfor i in range(3):\n    print(f'step {i}/3', flush=True); time.sleep(0.5)"
    )
    argv = [sys.executable, "-c", script, "{request}"]
    runner = CommandRunner(CommandTrainer(command=argv, timeout_s=2))
    with pytest.raises(TrainerOutputError):  # it writes no model: only its log matters here
        runner.train(request_file, request_file.parent / "output")
    shown = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("trainer, ")]
    assert any(ln.endswith(": step 0/3") for ln in shown), shown
    assert any(ln.endswith(": step 2/3") for ln in shown), shown
    assert len(shown) == len(set(ln.split(": ", 1)[1] for ln in shown)), "a line said twice"


def test_last_line_of_a_missing_or_empty_log_is_empty(tmp_path: Path) -> None:
    from infra.training.trainers import last_line

    assert last_line(tmp_path / "none.log") == ""
    (tmp_path / "a.log").write_text("one\ntwo\n\n")
    assert last_line(tmp_path / "a.log") == "two"
