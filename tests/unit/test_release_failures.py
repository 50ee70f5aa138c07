"""Every failure on the release path ends in a verdict and a record, never a bare traceback.

One test per failure class (issue: stale cache, missing evaluation file, registry
unreachable mid-run, image build error, target unreachable, a crash past deploy): each
asserts the verdict, the record (Prefect markdown artifact; an MLflow run where a store is
given) and that the champion and what serves are unchanged.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from prefect import flow, task
from prefect.artifacts import Artifact

from flows.release import release, run_release
from infra.controller.fake import FakeCheck, FakeImages
from infra.controller.model_cache import ModelCache
from infra.controller.ports import ReleasePorts, StepEvidence
from infra.errors import (
    ImageBuildError,
    RegistryUnreachableError,
    RejectedVersionError,
    ReleaseFailedError,
    SpecError,
)
from infra.registry import CHALLENGER, CHAMPION, FakeRegistry
from infra.spec import ReleaseSpec
from infra.targets.fake import FakeTarget
from tasks.retry import RETRY
from tests.fixtures import release_ports
from tests.fixtures.release_ports import (
    harness,  # noqa: F401 (autouse fixture)
    make_ports,
    model_dir,
)

NAME = "my-model"


def serve(ports: ReleasePorts, root: Path, stable: str, candidate: str) -> str:
    return release_ports.serve(ports, root, NAME, stable, candidate)


def record() -> str:
    data = getattr(Artifact.get(f"release-{NAME}"), "data", None)
    assert isinstance(data, str)
    return data


def assert_unchanged(ports: ReleasePorts, champion: str = "1") -> None:
    assert ports.registry.get_by_alias(NAME, CHAMPION).version == champion
    state = ports.target.status()
    assert state.settled
    assert state.stable is not None
    assert state.stable.model_version == champion


def failed(spec: ReleaseSpec, ports: ReleasePorts) -> ReleaseFailedError:
    """The flow fails (Prefect marks the run failed) with the named error and its record."""
    with pytest.raises(ReleaseFailedError) as err:
        release(spec, ports)
    return err.value


def test_a_registry_reset_does_not_serve_stale_cached_files(tmp_path: Path) -> None:
    """Version numbers start again at 1 after a reset: v2 is another model now."""
    ports = make_ports(tmp_path)
    v2 = serve(ports, tmp_path / "first", "a", "b")
    assert release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports).verdict == "promoted"
    ports.registry, ports.target = FakeRegistry(), FakeTarget()  # the same work dir (cache)
    v2 = serve(ports, tmp_path / "second", "c", "d")
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "promoted"
    check = ports.check
    assert isinstance(check, FakeCheck)
    model, champion = check.calls[-1]
    assert (model / "config.json").read_text() == '{"tag": "d"}'
    assert champion is not None
    assert (champion / "config.json").read_text() == '{"tag": "c"}'
    assert model.name == ports.registry.get(NAME, v2).digest  # named by content


def test_a_cached_copy_that_no_longer_verifies_is_replaced(tmp_path: Path) -> None:
    registry = FakeRegistry()
    mv = registry.register(NAME, model_dir(tmp_path, "a"))
    cache = ModelCache(tmp_path / "cache")
    path = cache.fetch(registry, mv)
    (path / "config.json").write_text("edited by hand")
    again = cache.fetch(registry, mv)
    assert again == path
    assert (again / "config.json").read_text() == '{"tag": "a"}'


def test_prune_keeps_the_recent_and_the_named(tmp_path: Path) -> None:
    registry = FakeRegistry()
    cache = ModelCache(tmp_path / "cache", keep_last=2)
    versions = [registry.register(NAME, model_dir(tmp_path, t)) for t in "abcd"]
    paths = [cache.fetch(registry, mv) for mv in versions]
    removed = cache.prune(keep={versions[0].digest})
    assert sorted(removed) == [paths[1]]
    assert [p.exists() for p in paths] == [True, False, True, True]


def test_a_missing_evaluation_file_is_an_error_verdict_with_a_record(tmp_path: Path) -> None:
    gone = tmp_path / "eval.jsonl"
    missing = FileNotFoundError(errno.ENOENT, "No such file or directory", str(gone))
    ports = make_ports(tmp_path, check=FakeCheck(error=missing))
    v2 = serve(ports, tmp_path, "a", "b")
    err = failed(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    outcome = err.outcome
    assert getattr(outcome, "verdict", None) == "error"
    assert getattr(outcome, "phase", None) == "validate"
    assert str(gone) in str(err)
    assert "what to do: validation could not run" in str(err)
    assert record().startswith("# Verdict: error")
    assert not ports.registry.get(NAME, v2).rejected  # not the model's fault
    assert_unchanged(ports)


def test_registry_unreachable_at_package_registers_and_deploys_nothing(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    serve(ports, tmp_path, "a", "b")
    assert isinstance(ports.registry, FakeRegistry)
    ports.registry.fail["register"] = RegistryUnreachableError("MLflow store is down")
    before = ports.registry.get_by_alias(NAME, CHALLENGER).version
    spec = ReleaseSpec(model=str(model_dir(tmp_path, "new")), registered_name=NAME)
    err = failed(spec, ports)
    assert "RegistryUnreachableError during package: MLflow store is down" in str(err)
    assert ports.registry.get_by_alias(NAME, CHALLENGER).version == before
    assert isinstance(ports.images, FakeImages)
    assert ports.images.built == []
    assert_unchanged(ports)


def test_an_image_build_error_is_an_error_not_a_rejection(tmp_path: Path) -> None:
    broken = ImageBuildError("docker build failed: no space left on device")
    ports = make_ports(tmp_path, images=FakeImages(error=broken))
    v2 = serve(ports, tmp_path, "a", "b")
    err = failed(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert "ImageBuildError during build: docker build failed" in str(err)
    assert not ports.registry.get(NAME, v2).rejected  # retry once the disk is freed
    assert_unchanged(ports)


def test_an_unreachable_target_ends_in_an_error_before_anything_changes(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    v2 = serve(ports, tmp_path, "a", "b")
    assert isinstance(ports.target, FakeTarget)
    ports.target.fail_on = {"status"}
    err = failed(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert "during reconcile: fake target: injected failure in status" in str(err)
    ports.target.fail_on = set()
    assert [n for n, _ in ports.target.calls if n not in ("status", "deploy")] == []
    assert_unchanged(ports)


def test_a_target_serving_another_model_is_refused_before_anything_changes(
    tmp_path: Path,
) -> None:
    """On a target serving my-model, a release of other-model used to reconcile by
    other-model's champion and point it at my-model's version; now it is refused first."""
    ports = make_ports(tmp_path)
    serve(ports, tmp_path, "a", "b")  # my-model v1 serves, v2 is its challenger
    assert isinstance(ports.target, FakeTarget)
    other = ports.registry.register("other-model", model_dir(tmp_path, "o1"), alias=CHAMPION)
    ports.registry.register("other-model", model_dir(tmp_path, "o2"), alias=CHALLENGER)
    err = failed(ReleaseSpec(model="models:/other-model/2"), ports)
    message = str(err)
    assert "TargetServesAnotherModelError during reconcile" in message
    assert f"serves {NAME} v1 as its stable" in message
    assert "One target serves one model" in message
    assert ports.registry.get_by_alias("other-model", CHAMPION).version == other.version
    assert not ports.registry.get("other-model", "2").rejected
    assert [n for n, _ in ports.target.calls if n != "status"] == ["deploy"]  # serve()'s only
    assert_unchanged(ports)


def test_a_crash_in_the_canary_rolls_it_back_and_keeps_the_champion(tmp_path: Path) -> None:
    class Exploding:
        def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
            raise RuntimeError("disk quota exceeded writing locust.csv")

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ports = make_ports(tmp_path, load=lambda _d: Exploding(), tracking_uri=uri)
    v2 = serve(ports, tmp_path, "a", "b")
    outcome = run_release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "error"
    assert outcome.phase == "canary"
    assert outcome.reasons[0] == (
        "RuntimeError during canary: disk quota exceeded writing locust.csv"
    )
    assert outcome.reasons[1].startswith("what to do: the canary analysis stopped")
    assert outcome.reasons[2].startswith("target: rolled_back")
    assert not ports.registry.get(NAME, v2).rejected
    assert_unchanged(ports)
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("canaryflow-releases").experiment_id]
    )
    assert [r.data.tags["canaryflow.verdict"] for r in runs] == ["error"]


def test_a_version_rejected_before_is_a_rejected_verdict(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    v2 = serve(ports, tmp_path, "a", "b")
    ports.registry.reject(NAME, v2, ["quality 0.40 vs 0.98"])
    outcome = release(ReleaseSpec(model=f"models:/{NAME}/{v2}"), ports)
    assert outcome.verdict == "rejected"
    assert "rejected by an earlier release (quality 0.40 vs 0.98)" in outcome.reasons[0]
    assert record().startswith("# Verdict: rejected")
    assert_unchanged(ports)


@pytest.mark.parametrize(
    ("exc", "tries"),
    [
        (RejectedVersionError("v2 was rejected by an earlier release"), 1),
        (SpecError("canary.steps must increase"), 1),
        (RegistryUnreachableError("the MLflow store did not answer"), 3),
        (OSError(errno.ECONNRESET, "connection reset"), 3),
    ],
)
def test_tasks_retry_what_a_retry_can_mend_and_nothing_else(exc: Exception, tries: int) -> None:
    """A named refusal fails at once (it used to fail three times, 10 s later); an
    unreachable store or an OS error gets its two retries."""
    calls: list[int] = []

    @task(**{**RETRY, "retry_delay_seconds": 0})
    def step() -> None:
        calls.append(1)
        raise exc

    @flow
    def run() -> None:
        step()

    with pytest.raises(type(exc)):
        run()
    assert len(calls) == tries
