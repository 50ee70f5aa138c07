"""Trainers: how a candidate is trained, behind one small interface.

    trainer = make_trainer(spec.trainer)            # CommandTrainer | DeploymentTrainer spec
    result = trainer.train(request_path, output_dir)  # -> TrainerResult (request.py)

`CommandRunner` runs argv in its own process group with a log file and a hard timeout (the
group is killed past it, so a trainer's children die with it); `DeploymentRunner` runs a
Prefect deployment with `run_deployment` and waits for its final state. Both raise only
TrainingError subclasses: TrainerStartError (does not exist / cannot start), TrainerFailedError
(non-zero exit or failed run, with the log tail), TrainerTimeoutError. `FakeTrainer`
(infra/training/fake.py) stands in for them in unit tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from infra.errors import (
    TrainerFailedError,
    TrainerOutputError,
    TrainerStartError,
    TrainerTimeoutError,
)
from infra.training.request import (
    ENV_OUTPUT,
    ENV_REQUEST,
    TrainerResult,
    TrainingRequest,
    read_result,
)
from infra.training.spec import (
    OUTPUT_PLACEHOLDER,
    PYTHON_PLACEHOLDER,
    REQUEST_PLACEHOLDER,
    CommandTrainer,
    DeploymentTrainer,
)

LOG_FILE = "trainer.log"
PROGRESS_EVERY_S = 15.0
"""How often a running trainer's last log line is printed."""
TAIL_CHARS = 2000


class Trainer(Protocol):
    def describe(self) -> str:
        """One line naming the trainer (for messages and the `canaryflow.trainer` tag)."""
        ...

    def parameters(self) -> dict[str, str]:
        """What ran, as strings, for the lineage tags (argv, env names, deployment, timeout)."""
        ...

    def train(self, request_path: Path, output_dir: Path) -> TrainerResult:
        """Run to completion; the trainer's answer (not yet checked as a model)."""
        ...


class CommandRunner:
    """A local program; see CommandTrainer for the fields."""

    def __init__(self, spec: CommandTrainer) -> None:
        self.spec = spec

    def describe(self) -> str:
        return f"command {self.spec.describe()}"

    def parameters(self) -> dict[str, str]:
        return {"command": " ".join(self.spec.command), "env": ",".join(sorted(self.spec.env)),
                "cwd": self.spec.cwd or ".", "timeout_s": f"{self.spec.timeout_s:g}"}  # fmt: skip

    def train(self, request_path: Path, output_dir: Path) -> TrainerResult:
        values = {REQUEST_PLACEHOLDER: str(request_path), OUTPUT_PLACEHOLDER: str(output_dir),
                  PYTHON_PLACEHOLDER: sys.executable}  # fmt: skip
        argv = [_fill(arg, values) for arg in self.spec.command]
        log_path = request_path.parent / LOG_FILE
        env = {**os.environ, **self.spec.env, ENV_REQUEST: str(request_path),
               ENV_OUTPUT: str(output_dir)}  # fmt: skip
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(  # argv from the spec, no shell
                    argv, cwd=self.spec.cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
            except OSError as exc:
                raise TrainerStartError(
                    f"trainer command {argv[0]!r} could not be started ({exc.strerror or exc}); "
                    "check that it is installed on the worker and executable, and the cwd "
                    f"({self.spec.cwd or 'the working directory'}) exists"
                ) from exc
            try:
                code = self._wait(proc, log_path)
            except subprocess.TimeoutExpired:
                _kill_group(proc)
                raise TrainerTimeoutError(
                    f"{self.describe()} ran past timeout_s={self.spec.timeout_s:g}; its process "
                    f"group was killed. Raise trainer.timeout_s or train faster. Log tail:\n"
                    f"{tail(log_path)}"
                ) from None
        if code != 0:
            raise TrainerFailedError(
                f"{self.describe()} exited with {code}; nothing was registered. Log tail "
                f"({log_path}):\n{tail(log_path)}"
            )
        return read_result(output_dir, self.describe())

    def _wait(self, proc: subprocess.Popen[bytes], log_path: Path) -> int:
        """The exit code; every `PROGRESS_EVERY_S` the log's last line is printed (the
        retrain flow's log, which make demo follows, shows how far training is)."""
        deadline = time.monotonic() + self.spec.timeout_s
        started, said = time.monotonic(), ""
        while True:
            left = deadline - time.monotonic()
            try:
                return proc.wait(timeout=max(0.0, min(left, PROGRESS_EVERY_S)))
            except subprocess.TimeoutExpired:
                if left <= PROGRESS_EVERY_S:
                    raise
            line = last_line(log_path)
            if line and line != said:
                said = line
                print(f"trainer, {time.monotonic() - started:.0f} s: {line}")


def last_line(path: Path, chars: int = 400) -> str:
    """The last non-empty line of a log ('' when none), at most `chars` characters."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return next((ln.strip()[:chars] for ln in reversed(lines) if ln.strip()), "")


def _fill(arg: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        arg = arg.replace(placeholder, value)
    return arg


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):  # it ended by itself just now
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(path: Path, chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a log file ("(empty)" when there is nothing)."""
    if not path.is_file():
        return "(no log)"
    data = path.read_bytes()[-chars:].decode("utf-8", errors="replace").strip()
    return data or "(empty)"


RunDeployment = Callable[..., Any]


class DeploymentRunner:
    """A Prefect deployment run; see DeploymentTrainer. `run_deployment` is injectable."""

    def __init__(self, spec: DeploymentTrainer, run: RunDeployment | None = None) -> None:
        self.spec = spec
        self._run = run

    def describe(self) -> str:
        return self.spec.describe()

    def parameters(self) -> dict[str, str]:
        return {"deployment": self.spec.deployment, "parameter": self.spec.parameter,
                "timeout_s": f"{self.spec.timeout_s:g}"}  # fmt: skip

    def train(self, request_path: Path, output_dir: Path) -> TrainerResult:
        from prefect.exceptions import ObjectNotFound

        run = self._run or _run_deployment()
        request = TrainingRequest.read(request_path).model_dump(mode="json")
        started = time.monotonic()
        try:
            flow_run = run(self.spec.deployment, parameters={self.spec.parameter: request},
                           timeout=self.spec.timeout_s, poll_interval=self.spec.poll_s,
                           tags=["canaryflow-retrain"])  # fmt: skip
        except ObjectNotFound:
            raise TrainerStartError(
                f"no Prefect deployment {self.spec.deployment!r}; deploy the training flow "
                "(prefect deploy) or fix trainer.deployment"
            ) from None
        except Exception as exc:  # the server refused the run (bad parameter schema, …)
            raise TrainerStartError(
                f"could not start a run of deployment {self.spec.deployment!r}: {exc}"
            ) from exc
        state = flow_run.state
        if state is None or not state.is_final():
            raise TrainerTimeoutError(
                f"{self.describe()} run {flow_run.name} not finished after "
                f"{time.monotonic() - started:.0f} s (timeout_s={self.spec.timeout_s:g}); "
                "it is left running: cancel it in the Prefect UI, or raise trainer.timeout_s"
            )
        if not state.is_completed():
            raise TrainerFailedError(
                f"{self.describe()} run {flow_run.name} ended {state.type.value}: "
                f"{state.message or 'no message'}; see its logs in the Prefect UI"
            )
        return _deployment_result(state, output_dir, self.describe())


def _run_deployment() -> RunDeployment:
    from prefect.deployments import run_deployment

    return run_deployment


def _deployment_result(state: Any, output_dir: Path, trainer: str) -> TrainerResult:
    """result.json when the flow could write it here; else the flow's returned dict."""
    try:
        return read_result(output_dir, trainer)
    except TrainerOutputError as no_file:
        try:
            value = state.result(raise_on_failure=False)
        except Exception:  # no persisted result: the file was the only way to answer
            raise no_file from None
        if isinstance(value, dict):
            return TrainerResult.model_validate(value)
        raise


def make_trainer(spec: CommandTrainer | DeploymentTrainer) -> Trainer:
    """The runner for a trainer spec; an unknown kind is refused (never a fallback)."""
    if isinstance(spec, CommandTrainer):
        return CommandRunner(spec)
    if isinstance(spec, DeploymentTrainer):
        return DeploymentRunner(spec)
    raise TrainerStartError(f"unknown trainer kind {type(spec).__name__}")
