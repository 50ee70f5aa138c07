"""The Prefect release flow end to end with fake ports, under prefect_test_harness."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prefect.artifacts import Artifact

from flows.release import release
from infra.controller.fake import FakeImages, slow_canary
from infra.controller.ports import ReleasePorts
from infra.controller.record import ReleaseOutcome, StepRecord
from infra.errors import SpecError
from infra.registry import CHAMPION
from infra.spec import GitSource, ReleaseSpec
from infra.targets.base import Variant
from infra.targets.fake import FakeTarget
from tasks.report import log_release_run
from tests.fixtures.release_ports import (
    harness,  # noqa: F401 (autouse fixture)
    make_ports,
    model_dir,
    serve,
)

NAME = "tiny-chat"


def serve_v1(ports: ReleasePorts, tmp: Path) -> str:
    """v1 serves as stable + champion; v2 is registered as challenger; returns v2's version."""
    return serve(ports, tmp, NAME, "v1", "v2")


def effects(target: FakeTarget) -> list[object]:
    return [a if n == "set_weights" else n for n, a in target.calls if n != "status"]


def test_good_canary_is_promoted_with_a_markdown_record(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    v2 = serve_v1(ports, tmp_path)
    assert isinstance(ports.target, FakeTarget)
    ports.target.calls.clear()
    outcome = release(ReleaseSpec(model=f"models:/{NAME}@challenger"), ports)
    assert outcome.verdict == "promoted"
    assert outcome.version == v2
    assert effects(ports.target) == ["deploy", 10, 25, 50, "promote"]
    assert ports.registry.get_by_alias(NAME, CHAMPION).version == v2
    markdown = getattr(Artifact.get("release-tiny-chat"), "data", None)
    assert isinstance(markdown, str)
    assert markdown.startswith("# Verdict: promoted")
    assert re.search(r"\| 10% \| 0 \| \d+ \| advance \| latency\.p99 \| pass \|", markdown)
    assert Artifact.get("canary-step-10-run-0") is not None


def test_slow_canary_is_rolled_back(tmp_path: Path) -> None:
    ports = make_ports(tmp_path, slow_canary())
    v2 = serve_v1(ports, tmp_path)
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "rolled_back"
    assert any(f"{name}.p" in outcome.reasons[0] for name in ("latency", "ttft", "itl"))
    assert ports.registry.get(NAME, v2).rejected
    state = ports.target.status()
    assert state.stable is not None
    assert state.stable.model_version == "1"
    assert state.settled


def test_a_candidate_failing_validation_is_rejected_before_deploy(tmp_path: Path) -> None:
    ports = make_ports(tmp_path, reasons=("accuracy 0.500 is below the threshold 0.800",))
    v2 = serve_v1(ports, tmp_path)
    assert isinstance(ports.target, FakeTarget)
    assert isinstance(ports.images, FakeImages)
    ports.target.calls.clear()
    outcome = release(ReleaseSpec(model=f"models:/{NAME}@challenger"), ports)
    assert outcome.verdict == "rejected"
    assert "accuracy" in outcome.reasons[0]
    assert effects(ports.target) == []
    assert ports.images.built == []
    assert ports.registry.get(NAME, v2).rejected


def test_a_version_rejected_before_is_refused_before_any_effect(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    v2 = serve_v1(ports, tmp_path)
    ports.registry.reject(NAME, v2, ["quality: 0.00 vs 0.98"])
    assert isinstance(ports.target, FakeTarget)
    ports.target.calls.clear()
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "rejected"
    assert re.search(r"v2 was rejected .*quality: 0.00 vs 0.98", outcome.reasons[0])
    assert effects(ports.target) == []


@pytest.mark.parametrize("given", ["both", "neither"])
def test_a_release_needs_exactly_one_of_spec_and_git(tmp_path: Path, given: str) -> None:
    spec = ReleaseSpec(model=f"models:/{NAME}@challenger") if given == "both" else None
    git = GitSource(repo=str(tmp_path), sha="abc1234") if given == "both" else None
    with pytest.raises(SpecError, match=f"either `spec`.*not {given}"):
        release(spec, make_ports(tmp_path), git=git)


def test_first_release_of_a_directory_deploys_stable_and_champion(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    spec = ReleaseSpec(model=str(model_dir(tmp_path, "v1")), registered_name=NAME)
    outcome = release(spec, ports)
    assert outcome.verdict == "promoted"
    assert outcome.version == "1"
    assert not outcome.steps
    assert ports.registry.get_by_alias(NAME, CHAMPION).version == "1"
    state = ports.target.status()
    assert state.stable is not None
    assert state.canary is None


def test_a_half_done_release_is_rolled_back_before_the_next_starts(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    v2 = serve_v1(ports, tmp_path)
    stale = Variant(role="canary", image="img:x", model_name=NAME, model_version=v2,
                    release_id="crashed")  # fmt: skip
    ports.target.deploy(stale)
    ports.target.set_weights(25)
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert isinstance(ports.target, FakeTarget)
    assert effects(ports.target)[3:6] == ["rollback", "deploy", 10]
    assert outcome.verdict == "promoted"


def test_the_release_is_logged_as_an_mlflow_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    html = tmp_path / "locust.html"
    html.write_text("<html>report</html>")
    step = StepRecord(weight=10, attempt=1, requests=100, outcome="pass", action="advance",
                      reason="all checks passed", elapsed_s=1.0, reports={"locust": html},
                      table=[{"check": "latency", "outcome": "pass", "effect": 1.02}])  # fmt: skip
    judged_on = {"canaryflow.eval_digest": "sha256:" + "ab" * 32,
                 "canaryflow.eval_name": "support-tickets", "canaryflow.eval_rows": "250",
                 "canaryflow.eval_source": "/data/support.jsonl",
                 "canaryflow.eval_dataset": "support-tickets-abab",
                 "canaryflow.eval_dataset_id": "d-123"}  # fmt: skip
    outcome = ReleaseOutcome(release_id="r-1", model_name=NAME, version="2",
                             verdict="promoted", steps=(step,), tags=judged_on)  # fmt: skip
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_id = log_release_run(uri, outcome)
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.tags["canaryflow.verdict"] == "promoted"
    (used,) = run.inputs.dataset_inputs  # the run page's "Datasets used"
    assert used.dataset.name == "support-tickets-abab"
    assert used.dataset.digest == ("ab" * 32)[:36]
    assert '"dataset_id": "d-123"' in used.dataset.source
    assert [(t.key, t.value) for t in used.tags] == [("mlflow.data.context", "evaluation")]
    assert run.data.tags["canaryflow.model_version"] == "2"
    assert run.data.metrics["step10.run1.latency.effect"] == pytest.approx(1.02)
    names = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "reports/step-10-1")}
    assert names == {"reports/step-10-1/locust.html"}


def test_an_unreachable_tracking_store_is_a_clear_error_naming_the_release(
    tmp_path: Path,
) -> None:
    from infra.errors import RegistryUnreachableError

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    first = ReleaseOutcome(release_id="r-8", model_name=NAME, version="2", verdict="promoted")
    log_release_run(uri, first)  # the store is up (a fresh store that is down retries ~100 s)
    db.rename(tmp_path / "away.db")
    db.mkdir()  # then its file is gone: sqlite cannot open a directory
    outcome = ReleaseOutcome(release_id="r-9", model_name=NAME, version="3", verdict="aborted",
                             reasons=("promote not recorded: MLflow store is down",))  # fmt: skip
    with pytest.raises(RegistryUnreachableError) as err:
        log_release_run(uri, outcome)
    message = str(err.value)
    assert "release r-9" in message
    assert "ended aborted" in message
    assert f"release-{NAME}" in message  # where the decision record is
    assert "[SQL" not in message  # the telling line, not SQLAlchemy's statement dump
