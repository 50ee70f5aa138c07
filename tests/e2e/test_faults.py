"""Faults during real releases: the stable keeps serving, the end is consistent, the
registry names what serves, and the record names what failed.

Real DockerTarget + HAProxy + Prometheus, real Locust through the router, the real
controller and release flow, an MLflow sqlite registry; the serving containers are the
stand-in server with fault knobs (tests/fixtures/faults.py), so each case takes seconds.
A background stream of requests runs through the router during every case; each test
prints what it injected and what it observed, and the module prints the table at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from flows.release import run_release
from infra.controller.record import ReleaseOutcome
from infra.errors import RegistryError
from infra.registry import CHAMPION, registry_from_uri
from infra.registry.base import ModelRegistry
from tests.fixtures.docker_target import make_config, running_target, standin_image
from tests.fixtures.fault_report import FaultTable, background_stream
from tests.fixtures.faults import (
    NAME,
    FaultBench,
    StandinImages,
    assert_consistent,
    canary_container,
    candidate_dir,
    later,
    spec_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.faults]
TABLE = FaultTable("release faults")


@pytest.fixture(scope="module", autouse=True)
def _harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # run_release is called here without a flow (its tasks still run): no API log warning
        mp.setenv("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
        with prefect_test_harness(server_startup_timeout=90):
            yield
    TABLE.print()


@pytest.fixture(scope="module")
def bench(
    docker_client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultBench]:
    root = tmp_path_factory.mktemp("faults")
    config = make_config(root / "target", ready_timeout_s=20, drain_timeout_s=5, stop_grace_s=3)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with running_target(config) as target:
        images = StandinImages(target.client, standin_image(target.client))
        bench = FaultBench(target, registry_from_uri(uri), uri, root / "work", images)
        first = run_release(spec_for(candidate_dir(root, "v1")), bench.ports(spec_for(root)))
        assert first.verdict == "promoted", first.reasons
        yield bench


# Cases about consistency, not speed: a latency verdict between two stand-ins sharing two
# cores with Locust says little, and an identical canary must not fail on it here.
SAME_SPEED = {"latency": {"enabled": False}, "ttft": {"enabled": False}, "itl": {"enabled": False}}


def _run(
    bench: FaultBench,
    model: Path,
    *,
    registry: ModelRegistry | None = None,
    policy: dict[str, object] | None = None,
    steps: tuple[int, ...] = (50,),
    **hooks: object,
) -> ReleaseOutcome:
    spec = spec_for(model, steps, **(policy or {}))
    return run_release(spec, bench.ports(spec, registry=registry, **hooks))  # type: ignore[arg-type]


def _versions(registry: ModelRegistry) -> list[str]:
    client = registry.client  # type: ignore[attr-defined]
    return sorted(mv.version for mv in client.search_model_versions(f"name='{NAME}'"))


@contextlib.contextmanager
def _fault(bench: FaultBench, name: str, injected: str) -> Iterator[dict[str, object]]:
    """Runs a request stream through the router during the case; adds the table row."""
    row: dict[str, object] = {"fault": name, "injected": injected}
    champion_before = bench.registry.get_by_alias(NAME, CHAMPION).version
    with background_stream(bench.target) as stream:
        yield row
    row.update(stream.summary())
    row["champion"] = f"v{champion_before} → v{bench.registry.get_by_alias(NAME, CHAMPION).version}"
    TABLE.add(row)
    print(f"\nFAULT {name}: injected {injected}; observed {row}")
    assert stream.stable_failed == 0, f"{stream.stable_failed} requests failed on the stable"


def _reasons(outcome: ReleaseOutcome) -> str:
    return " | ".join(outcome.reasons)


def test_canary_container_killed_mid_step(bench: FaultBench, tmp_path: Path) -> None:
    model = candidate_dir(tmp_path, "killed")

    def kill(run: int, _weight: int) -> None:
        if run == 0:
            container = canary_container(bench.target)
            later(1.0, lambda: container.kill())

    with _fault(bench, "canary killed mid-step", "SIGKILL of the canary 1 s into the probe") as row:
        outcome = _run(bench, model, before=kill)
        row["verdict"] = outcome.verdict
    assert outcome.verdict == "rolled_back", _reasons(outcome)
    assert_consistent(bench.target, bench.registry)


UNDEPLOYABLE = {
    # id: (fault knobs, what the table says was injected, what the abort reason must say)
    "crash loop": ({"STANDIN_CRASH": "1"}, "server exits 3 at every start",
                   ("DeployError", "exited")),
    "never healthy": ({"STANDIN_READY_AFTER_S": "100000"},
                      "/health 503 forever (ready timeout 20 s)", ("not healthy",)),
}  # fmt: skip


@pytest.mark.parametrize("fault", list(UNDEPLOYABLE))
def test_undeployable_canary_is_aborted(bench: FaultBench, tmp_path: Path, fault: str) -> None:
    knobs, injected, says = UNDEPLOYABLE[fault]
    model = candidate_dir(tmp_path, fault.replace(" ", "-"), **knobs)
    with _fault(bench, f"canary {fault}", injected) as row:
        outcome = _run(bench, model)
        row["verdict"] = outcome.verdict
    assert outcome.verdict == "aborted", _reasons(outcome)
    assert any(s in _reasons(outcome) for s in says), _reasons(outcome)
    assert_consistent(bench.target, bench.registry)


BAD_CANARIES = {
    # id: (fault knobs, what the table says was injected, the check the record must name)
    "5xx": ({"STANDIN_ERROR_SHARE": "0.2", "STANDIN_ERROR_STATUS": "500"},
            "HTTP 500 for 20% of requests", "error_rate"),
    "4xx": ({"STANDIN_ERROR_SHARE": "0.2", "STANDIN_ERROR_STATUS": "400"},
            "HTTP 400 for 20% of requests", "error_rate"),
    # The stand-in waits before its first chunk, so TTFT and latency carry the same 20 ms;
    # whichever check is confidently beyond its margin first names the rollback.
    "2x slower": ({"STANDIN_LATENCY_S": "0.04"}, "40 ms per request vs 20 ms", "latency|ttft"),
    "quality": ({"STANDIN_WRONG_SHARE": "0.3"}, "30% of answers off by one", "quality"),
}  # fmt: skip


@pytest.mark.parametrize("fault", list(BAD_CANARIES))
def test_bad_canary_is_rolled_back_naming_the_failed_check(
    bench: FaultBench, tmp_path: Path, fault: str
) -> None:
    knobs, injected, check = BAD_CANARIES[fault]
    model = candidate_dir(tmp_path, fault.replace(" ", "-"), **knobs)
    with _fault(bench, f"canary: {fault}", injected) as row:
        outcome = _run(bench, model)
        row["verdict"] = outcome.verdict
    assert outcome.verdict == "rolled_back", _reasons(outcome)
    assert any(name in _reasons(outcome) for name in check.split("|")), _reasons(outcome)
    assert_consistent(bench.target, bench.registry)


def test_haproxy_killed_mid_step_is_restarted_with_its_weights(
    bench: FaultBench, tmp_path: Path
) -> None:
    model = candidate_dir(tmp_path, "haproxy")
    pidfile = bench.target.config.router_layout().pidfile

    def kill(run: int, _weight: int) -> None:
        if run == 0:
            later(1.0, lambda: os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL))

    with _fault(bench, "HAProxy killed mid-step", "SIGKILL of HAProxy 1 s into the probe") as row:
        outcome = _run(bench, model, before=kill, policy=SAME_SPEED)
        row["verdict"] = outcome.verdict
    # The run that lost the router is repeated once HAProxy is back with its weights.
    assert outcome.verdict == "promoted", _reasons(outcome)
    assert_consistent(bench.target, bench.registry)


def test_prometheus_down_does_not_blind_the_analysis(bench: FaultBench, tmp_path: Path) -> None:
    model = candidate_dir(tmp_path, "noprom")
    metrics = bench.target.metrics
    assert metrics is not None
    with _fault(bench, "Prometheus down", "Prometheus stopped before the release") as row:
        metrics.stop()
        outcome = _run(bench, model, policy=SAME_SPEED)
        row["verdict"] = outcome.verdict
    # The analysis reads Locust's per-request records, not PromQL: an identical canary passes.
    assert outcome.verdict == "promoted", _reasons(outcome)
    assert_consistent(bench.target, bench.registry)


@contextlib.contextmanager
def _store_down(uri: str) -> Iterator[None]:
    """The sqlite store becomes unreachable (its file replaced by a directory), then returns."""
    db = Path(uri.removeprefix("sqlite:///"))
    away = db.with_name(db.name + ".away")
    db.rename(away)
    db.mkdir()
    try:
        yield
    finally:
        shutil.rmtree(db)
        away.rename(db)


def test_registry_down_at_package_deploys_nothing(bench: FaultBench, tmp_path: Path) -> None:
    model = candidate_dir(tmp_path, "nopkg")
    before, serving = _versions(bench.registry), bench.target.status().stable
    with _fault(bench, "MLflow down at package", "sqlite store unreachable") as row:
        with _store_down(bench.tracking_uri):
            outcome = _run(bench, model)
        row["verdict"] = f"{outcome.verdict}: {outcome.reasons[0].split(':')[0]}"
    print(f"{outcome.verdict}: {outcome.reasons}")
    assert outcome.verdict == "error"
    assert outcome.reasons[0].startswith("RegistryUnreachableError during ")  # its first use
    assert "the MLflow run was not logged" in outcome.notes[0]
    assert _versions(bench.registry) == before
    assert bench.target.status().stable == serving
    assert_consistent(bench.target, bench.registry)


def test_registry_down_at_promote_leaves_the_alias(bench: FaultBench, tmp_path: Path) -> None:
    model = candidate_dir(tmp_path, "nopromote")
    store: contextlib.ExitStack = contextlib.ExitStack()
    broken: list[bool] = []

    def break_store(run: int, _weight: int) -> None:
        if run == 1 and not broken:  # after the probe and the full analysis of the step
            broken.append(True)
            store.enter_context(_store_down(bench.tracking_uri))

    champion = bench.registry.get_by_alias(NAME, CHAMPION).version
    with _fault(
        bench, "MLflow down at promote", "sqlite store unreachable after the analysis"
    ) as row:
        with store, pytest.raises(RegistryError) as err:
            _run(bench, model, after=break_store, policy=SAME_SPEED)
        row["verdict"] = f"error: {type(err.value).__name__}"
    print(f"error: {err.value}")
    assert broken, "the store was never taken down: the canary did not reach the promote"
    # The promote could not be recorded, so it was rolled back; the MLflow run of that
    # decision could not be written either, and the error says where the record is instead.
    assert "ended aborted" in str(err.value), err.value
    assert "cannot be reached" in str(err.value), err.value
    assert bench.registry.get_by_alias(NAME, CHAMPION).version == champion
    state = bench.target.status()
    assert state.stable is not None
    assert state.stable.model_version == champion
    assert_consistent(bench.target, bench.registry)


# -- the release process killed at each step boundary, then the next run reconciles --------

KILLS = {
    # kill_at: (what the kill leaves, the verdict of the next run of the same candidate)
    "after-package": ("a registered challenger, nothing built", "promoted"),
    "after-build": ("a built image, nothing deployed", "promoted"),
    "step:1": ("the canary serving 30% of traffic", "promoted"),
    "step:2": ("the canary serving 60% of traffic", "promoted"),
    "promote:weights": ("champion moved, all traffic on the canary", "aborted"),
    "promote:stable-retiring": ("the old stable draining", "aborted"),
}


def _killed_release(bench: FaultBench, model: Path, kill_at: str) -> str:
    """Run the release in a child process that SIGKILLs itself at `kill_at`; its output."""
    from prefect.settings import PREFECT_API_URL

    args = {
        "kill_at": kill_at, "config": bench.target.config.model_dump(mode="json"),
        "tracking_uri": bench.tracking_uri, "work_dir": str(bench.work_dir),
        "base_image": bench.images.base, "model": str(model), "steps": [30, 60],
        "policy": SAME_SPEED,
    }  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    child = subprocess.run(
        [sys.executable, "-m", "tests.fixtures.killed_release", json.dumps(args)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    output = child.stdout + child.stderr
    assert child.returncode == -signal.SIGKILL, f"exit {child.returncode}:\n{output[-4000:]}"
    assert f"REACHED {kill_at}" in child.stdout, output[-4000:]
    return output


@pytest.mark.parametrize("kill_at", list(KILLS))
def test_release_killed_at_a_boundary_is_reconciled_by_the_next_run(
    bench: FaultBench, tmp_path: Path, kill_at: str
) -> None:
    model = candidate_dir(tmp_path, kill_at.replace(":", "-"))
    left, verdict = KILLS[kill_at]
    with _fault(bench, f"release killed at {kill_at}", f"SIGKILL of the flow ({left})") as row:
        _killed_release(bench, model, kill_at)
        after_kill = bench.target.status()
        print(
            f"after the kill: canary {after_kill.canary}, {after_kill.canary_percent}% "
            f"off the stable, champion v{bench.registry.get_by_alias(NAME, CHAMPION).version}"
        )
        if kill_at.startswith("step:"):
            assert after_kill.canary is not None
            assert after_kill.canary_percent > 0
        outcome = _run(bench, model, steps=(30, 60), policy=SAME_SPEED)
        row["verdict"] = f"next run {outcome.verdict}"
    assert outcome.verdict == verdict, _reasons(outcome)
    state = assert_consistent(bench.target, bench.registry)
    assert state.stable is not None
    assert state.stable.model_version == outcome.version
