"""Bad inputs to every flow's spec fail validation, naming the field and what to give, and a
release given one stops before any effect (no reconcile, no registry call, no deploy).

Each row: (spec model, dotted field, bad value, hint the error must contain). The error's
location must be that field (`spec.canary.steps`, …), so a user sees *where* as well as *what*.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.exceptions import ParameterTypeError
from prefect.testing.utilities import prefect_test_harness
from pydantic import BaseModel, ValidationError

from flows.release import release
from infra.controller.fake import FakeCheck, FakeClock, FakeImages, FakeStepLoad, good_canary
from infra.controller.ports import ReleasePorts
from infra.githook.errors import SpecInvalidError
from infra.monitor.drift_watch import DriftCheckSpec
from infra.registry import FakeRegistry
from infra.spec import GitSource, ReleaseSpec
from infra.targets.fake import FakeTarget
from infra.training.spec import RetrainSpec

URI = "models:/tiny-chat@challenger"
RELEASE_BASE = {"model": URI, "evaluation": {"path": "eval.jsonl"}}
INF, NAN = float("inf"), float("nan")
GE, GT, LE, LT = "greater than or equal to", "greater than", "less than or equal to", "less than"
INT, NUM, EXTRA, FINITE = "valid integer", "valid number", "Extra inputs", "finite number"

RELEASE: list[tuple[str, object, str]] = [
    ("model", 3, "valid string"),
    ("model", None, "valid string"),
    ("model", "", "give models:/NAME@ALIAS or a model directory"),
    ("model", "   ", "give models:/NAME@ALIAS or a model directory"),
    ("model", "models:/tiny-chat", "is not models:/NAME/VERSION or models:/NAME@ALIAS"),
    ("model", "models:/tiny chat@x", "is not models:/NAME/VERSION"),
    ("model", "models:/tiny-chat/v2", "is not models:/NAME/VERSION"),
    ("model", "models:/tiny-chat@", "is not models:/NAME/VERSION"),
    ("model", "runs:/0a1b/model", "runs:/ URI; a release takes models:/"),
    ("model", "s3://bucket/model", "register it first"),
    ("model", "hf://org/model", "register it first"),
    ("registered_name", "tiny chat", "is not a name of letters, digits"),
    ("registered_name", "", "is not a name of letters, digits"),
    ("target", "nomad", "'docker' or 'kubernetes'"),
    ("target", "Docker", "'docker' or 'kubernetes'"),
    ("modle", "models:/x@y", EXTRA),
    ("serving.flavour", "cpu", EXTRA),
    ("serving.flavor", "tpu", "'cpu' or 'gpu'"),
    ("serving.served_model_name", "a/b", "is not a name of letters"),
    ("serving.max_model_len", 4, f"{GE} 16"),
    ("serving.max_model_len", "long", INT),
    ("serving.max_num_seqs", 0, f"{GE} 1"),
    ("serving.dtype", "int4", "'auto', 'float32', 'bfloat16' or 'float16'"),
    ("serving.gpu_memory_utilization", 1.5, f"{LE} 0.98"),
    ("serving.gpu_memory_utilization", 0, f"{GT} 0"),
    ("serving.kvcache_space_gib", -1, f"{GT} 0"),
    ("serving.api_key_secret", "My_Key", "is not a secret name of lowercase"),
    ("serving.replicas", 0, f"{GE} 1"),
    ("serving.replicas", 65, f"{LE} 64"),
    ("serving.replicas", 1.5, "fractional part"),
    ("serving.gpus", -1, f"{GE} 0"),
    ("serving.gpus", 9, f"{LE} 8"),
    ("serving.cpu", "-1", "is not a CPU quantity: cores like '1'"),
    ("serving.cpu", "two", "millicores like '500m'"),
    ("serving.memory", "lots", "is not a memory quantity like '4Gi'"),
    ("serving.memory", "4GB", "is not a memory quantity"),
    ("canary.steps", [], "at least one weight, e.g. [10, 25, 50]"),
    ("canary.steps", [50, 10], "must increase strictly"),
    ("canary.steps", [10, 10], "must increase strictly"),
    ("canary.steps", [10, 100], "1..99, got [10, 100]; 100 is the promote"),
    ("canary.steps", [10, 150], "must lie in 1..99"),
    ("canary.steps", [0, 50], "must lie in 1..99"),
    ("canary.steps", [-5], "must lie in 1..99"),
    ("canary.steps", 50, "valid list"),
    ("canary.steps.0", True, INT),
    ("canary.steps.0", "10", INT),
    ("canary.steps.0", 12.5, INT),
    ("canary.interval_s", -1, f"{GE} 0"),
    ("canary.interval_s", INF, FINITE),
    ("canary.interval_s", NAN, FINITE),
    ("canary.stepz", [10], EXTRA),
    ("canary.policy.alpha", 0, f"{GT} 0"),
    ("canary.policy.alpha", 0.5, f"{LT} 0.5"),
    ("canary.policy.alpha", "strict", NUM),
    ("canary.policy.min_samples", 5, f"{GE} 10"),
    ("canary.policy.failure_threshold", 0, f"{GE} 1"),
    ("canary.policy.progress_deadline_s", -1, f"{GT} 0"),
    ("canary.policy.progress_deadline_s", 0, f"{GT} 0"),
    ("canary.policy.progress_deadline_s", INF, FINITE),
    ("canary.policy.batch_requests", 0, f"{GE} 1"),
    ("canary.policy.expected_rps", 0, f"{GT} 0"),
    ("canary.policy.latncy", {}, EXTRA),
    ("canary.policy.latency.max_ratio", 0.9, f"{GE} 1"),
    ("canary.policy.latency.quantiles", [0.5, 1], "quantiles must each lie in (0, 1)"),
    ("canary.policy.ttft.quantiles", [0], "quantiles must each lie in (0, 1)"),
    ("canary.policy.latency.quantiles", [], "at least 1 item"),
    ("canary.policy.latency.pass_ratio", 2.0, "pass_ratio 2 is wider than max_ratio 1.5"),
    ("canary.policy.itl.min_increase_ms", -1, f"{GE} 0"),
    ("canary.policy.error_rate.pass_increase", 0.5, "is wider than max_increase 0.01"),
    ("canary.policy.quality.pass_drop", 0.5, "pass_drop 0.5 is wider than max_drop 0.1"),
    ("canary.policy", {"progress_deadline_s": 10}, "cannot fit the minimum evidence"),
    (
        "canary.policy",
        {"progress_deadline_s": 60, "on_inconclusive": "rollback"},
        "cannot fit the minimum evidence",
    ),
    ("canary.policy.on_inconclusive", "promote", "'advance' or 'rollback'"),
    ("canary.policy.latency.max_ms", -10, f"{GT} 0"),
    ("canary.policy.ttft.min_samples", 0, f"{GE} 1"),
    ("canary.policy.error_rate.max_increase", -0.1, f"{GE} 0"),
    ("canary.policy.error_rate.max_increase", 2, f"{LE} 1"),
    ("canary.policy.error_rate.max_rate", 1.5, f"{LE} 1"),
    ("canary.policy.quality.max_drop", 1.5, f"{LE} 1"),
    ("canary.policy.quality.min_accuracy", -1, f"{GE} 0"),
    ("canary.policy.drift.max_share", 0, f"{GT} 0"),
    ("canary.policy.drift.enabled", "maybe", "valid boolean"),
    ("canary.policy.hard.window_s", 0, f"{GT} 0"),
    ("canary.policy.hard.burst_rate", 2, f"{LE} 1"),
    ("canary.policy.hard.max_restarts", -1, f"{GE} 0"),
    ("canary.policy.early", {}, EXTRA),
    ("load.users", 0, f"{GE} 1"),
    ("load.users", 1000, f"{LE} 256"),
    ("load.spawn_rate", 0, f"{GT} 0"),
    ("load.prompts", "random", "'golden', 'replay' or 'synthetic'"),
    ("load.prompts", "replay", "needs load.replay_file (a captured-traffic JSONL)"),
    ("load.replay_file", "", "at least 1 character"),
    ("load.replay_file", "traffic.jsonl", "set load.prompts='replay' to send it"),
    ("load.max_tokens", 0, f"{GE} 1"),
    ("load.max_tokens", 10_000, f"{LE} 4096"),
    ("load.max_step_s", -5, f"{GT} 0"),
    ("load.max_step_s", INF, FINITE),
    ("evaluation.threshold", 1.5, f"{LE} 1"),
    ("evaluation.threshold", -0.1, f"{GE} 0"),
    ("evaluation.threshold", "high", NUM),
    ("evaluation.margin", 0, f"{GT} 0"),
    ("evaluation.margin", 2, f"{LE} 1"),
    ("evaluation.path", "", "at least 1 character"),
    ("evaluation.dataset", "support-qa", "give `path` or `dataset`, not both"),
    ("evaluation.scorers", [], "evaluation.scorers is empty"),
    ("evaluation.scorers.0", {"kind": "length"}, "needs min_length and/or max_length"),
    ("evaluation.allow_candidate_golden", "maybe", "valid boolean"),
    ("quality_threshold", 0.8, EXTRA),  # replaced by evaluation.threshold / margin
]
GIT: list[tuple[str, object, str]] = [
    ("sha", "HEAD", "is not a commit id: 7 to 64 lowercase hex digits"),
    ("sha", "ABC1234", "is not a commit id"),
    ("sha", "abc", "is not a commit id"),
    ("sha", None, "valid string"),
    ("repo", "", "at least 1 character"),
    ("repo", "-uexploit", "not starting with '-'"),
    ("repo", "/srv/git/app.git\nx", "without spaces or control characters"),
    ("ref", "refs/heads/ma in", "without spaces"),
    ("spec", "/etc/release.yaml", "relative to its root"),
    ("spec", "../release.yaml", "path inside the repository"),
    ("spec", ".", "path inside the repository"),
    ("spec", "", "at least 1 character"),
    ("branch", "main", EXTRA),
]
DRIFT: list[tuple[str, object, str]] = [
    ("model_name", "tiny chat", "String should match pattern"),
    ("target", "kubernetes", "'docker'"),
    ("window_s", 0, f"{GT} 0"),
    ("window_s", INF, FINITE),
    ("since", -1, f"{GE} 0"),
    ("min_rows", 5, f"{GE} 10"),
    ("max_share", 1.5, f"{LE} 1"),
    ("windows", 60, EXTRA),
    ("evaluation", None, "needs a reference: set `evaluation`"),
    ("evaluation", {"scorers": []}, "evaluation needs `path`"),
    ("compare_outputs", "maybe", "valid boolean"),
]
RETRAIN: list[tuple[str, object, str]] = [
    ("window_s", -1, f"{GT} 0"),
    ("min_requests", 0, f"{GE} 1"),
    ("holdout_fraction", 1, "less than 1"),
    ("split_seed", "x", INT),
    ("trainer.kind", "ssh", "'command', 'deployment'"),
    ("trainer", None, "valid dictionary"),  # (inside a trainer: test_training_trainers.py)
    ("release_deployment", "release", "String should match pattern"),
    ("release_spec", {"canary": {"steps": [50, 10]}}, "canary.steps: Value error, canary.steps"),
    ("release_spec", {"target": "nomad"}, "not a valid ReleaseSpec: target"),
    ("release_spec", {"lode": {}}, "not a valid ReleaseSpec: lode: Extra inputs"),
]
DRIFT_BASE = {"model_name": "team-model", "evaluation": {"dataset": "team-eval"}}
TRAINER = {"kind": "command", "command": ["{python}", "-m", "team.train", "{request}"]}
TABLE = (
    [(ReleaseSpec, RELEASE_BASE, *row) for row in RELEASE]
    + [(GitSource, {"repo": "/srv/git/app.git", "sha": "1a2b3c4"}, *row) for row in GIT]
    + [(DriftCheckSpec, DRIFT_BASE, *row) for row in DRIFT]
    + [(RetrainSpec, {"model_name": "team-model", "trainer": TRAINER}, *row) for row in RETRAIN]
)


def with_value(base: dict[str, Any], field: str, value: object) -> dict[str, Any]:
    """`base` with the dotted `field` set to `value`; `a.b.0` makes `b` the list [value, 50]."""
    data = {**base}
    *parents, last = field.split(".")
    if last.isdigit():
        *parents, last = parents
        value = [value, 50]
    node: Any = data
    for key in parents:
        node[key] = {**node.get(key, {})}
        node = node[key]
    node[last] = value
    return data


def error_for(model: type[BaseModel], data: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_the_table_is_large_and_covers_every_spec() -> None:
    assert len(TABLE) >= 100
    assert {m for m, *_ in TABLE} == {ReleaseSpec, GitSource, DriftCheckSpec, RetrainSpec}


@pytest.mark.parametrize(("model", "base", "field", "value", "hint"), TABLE,
                         ids=[f"{m.__name__}.{f}={v!r}" for m, _, f, v, _ in TABLE])  # fmt: skip
def test_a_bad_value_names_its_field_and_what_to_give(
    model: type[BaseModel], base: dict[str, Any], field: str, value: object, hint: str
) -> None:
    exc = error_for(model, with_value(base, field, value))
    located = {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
    where = field if field in located else field.rsplit(".", 1)[0]  # model-level checks
    assert where in located, f"error not located at {field}: {located}"
    assert hint in located[where], f"{field}={value!r}: {located[where]!r} lacks {hint!r}"
    assert where in str(exc)  # what Prefect and the git hook show carries the field too


@pytest.mark.parametrize(("field", "value", "hint"), RELEASE, ids=[f for f, _, _ in RELEASE])
def test_the_release_flow_refuses_each_bad_value_as_a_parameter(
    field: str, value: object, hint: str
) -> None:
    """Prefect's own parameter validation (run at the start of every flow run, before the
    body) rejects each one, with the field path `spec.…` in the message."""
    bad = with_value(RELEASE_BASE, field, value)
    with pytest.raises(ParameterTypeError, match=r"spec\.") as caught:
        release.validate_parameters({"spec": bad})
    assert hint in str(caught.value)


def test_good_specs_still_validate() -> None:
    spec = ReleaseSpec.model_validate({
        "model": "/data/model", "serving": {"cpu": "500m", "memory": "512Mi"},
        "load": {"prompts": "replay", "replay_file": "traffic.jsonl"},
        "canary": {"steps": [1, 99], "interval_s": 0,  # a 1 % step needs a fast load
                   "policy": {"expected_rps": 200}},
    })  # fmt: skip
    assert spec.canary.steps == [1, 99]
    assert GitSource(repo="/srv/git/app.git", sha="1a2b3c4", spec="deploy/release.yaml").spec
    assert RetrainSpec.model_validate(
        {
            "model_name": "team-model",
            "trainer": TRAINER,
            "release_spec": {"canary": {"steps": [50]}, "model": "ignored"},
        }
    ).release


# --- a release run given a bad spec touches nothing ------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        with prefect_test_harness(server_startup_timeout=60):
            yield


def fake_ports(tmp: Path) -> ReleasePorts:
    clock = FakeClock()
    load = FakeStepLoad(good_canary(), clock=clock)
    return ReleasePorts(target=FakeTarget(), registry=FakeRegistry(), load=lambda _d: load,
                        check=FakeCheck(), images=FakeImages(), work_dir=tmp / "work",
                        clock=clock, sleep=clock.advance)  # fmt: skip


def assert_untouched(ports: ReleasePorts, tmp: Path) -> None:
    assert isinstance(ports.target, FakeTarget)
    assert isinstance(ports.registry, FakeRegistry)
    assert isinstance(ports.images, FakeImages)
    assert isinstance(ports.check, FakeCheck)
    assert ports.target.calls == []  # not even a status read: reconcile never ran
    assert ports.registry.calls == []  # nothing resolved, registered, aliased or tagged
    assert ports.images.built == []
    assert ports.check.calls == []
    assert not (tmp / "work").exists()


BAD_RUNS = {
    "decreasing steps": {"model": URI, "canary": {"steps": [50, 10]}},
    "unknown target": {"model": URI, "target": "nomad"},
    "runs:/ uri": {"model": "runs:/0a1b/model"},
    "typo field": {"model": URI, "canary": {"policy": {"latncy": {}}}},
    "infinite deadline": {"model": URI, "canary": {"policy": {"progress_deadline_s": INF}}},
    "local dir, bad load": {"model": "/data/model", "load": {"users": 0}},
}


@pytest.mark.parametrize("bad", BAD_RUNS.values(), ids=BAD_RUNS.keys())
def test_a_release_run_with_a_bad_spec_changes_nothing(
    harness: None, tmp_path: Path, bad: dict[str, Any]
) -> None:
    ports = fake_ports(tmp_path)
    with pytest.raises(ParameterTypeError, match=r"invalid parameters"):
        release(spec=bad, ports=ports)  # type: ignore[arg-type]  # a dict, as Prefect gets it
    assert_untouched(ports, tmp_path)


def test_a_pushed_bad_spec_file_changes_nothing(harness: None, tmp_path: Path) -> None:
    repo = tmp_path / "app"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "release.yaml").write_text(f"model: {URI}\ncanary:\n  steps: [50, 10]\n")
    subprocess.run([*git, "add", "release.yaml"], check=True)
    subprocess.run([*git, "commit", "-qm", "bad spec"], check=True)
    sha = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()  # fmt: skip
    ports = fake_ports(tmp_path)
    with pytest.raises(SpecInvalidError, match=r"canary\.steps: .*must increase strictly"):
        release(git=GitSource(repo=str(repo), sha=sha), ports=ports)
    assert_untouched(ports, tmp_path)
