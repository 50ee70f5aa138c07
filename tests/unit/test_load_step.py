"""LocustStepLoad with users' traffic enough: no Locust, the paired window on two local servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.errors import NoTrafficError, PairedWindowError
from infra.load.paired import PairedSettings
from infra.load.step import LocustStepLoad, WindowOptions
from infra.spec import ReleaseSpec
from infra.targets.base import Endpoint, Role, Variant
from infra.targets.fake import FakeTarget
from serving.capture import Exchange, RegexRedactor, build_record
from tests.fixtures.sse_server import SseServer, sse_server
from validation.golden import Example, write_jsonl
from validation.metrics.base import Metric

ANSWER = b'{"choices": [{"message": {"content": "x"}}]}'
GOLDEN = [Example(f"{a}+{a}", str(2 * a)) for a in range(1, 7)]


def solve(prompt: str) -> str:
    a, b = prompt.split("+")
    return str(int(a) + int(b))


@dataclass
class DirectTarget(FakeTarget):
    """A FakeTarget whose variants answer on real loopback servers, with a capture dir."""

    urls: dict[str, str] = field(default_factory=dict)
    capture: Path = Path()
    key_file: Path = Path()

    def endpoints(self) -> dict[Role, Endpoint]:
        return {r: Endpoint(r, u, "1") for r, u in self.urls.items()}  # type: ignore[misc]

    @property
    def capture_dir(self) -> Path:
        return self.capture

    @property
    def api_key_file(self) -> Path:
        return self.key_file


VERSIONS = {"stable": "1", "canary": "2"}  # what the `target` fixture deploys


def users(folder: Path, variant: str, n: int, tag: str = "user", label: str | None = None) -> None:
    """`n` captured user requests served by `variant` (its version), written with the server's
    own `label` (default: the variant; a promoted stable still writes 'canary')."""
    folder.mkdir(parents=True, exist_ok=True)
    label = label or variant
    with (folder / f"capture-{label}-h-{VERSIONS[variant]}.jsonl").open("a", encoding="utf-8") as f:
        for i in range(n):
            body = json.dumps({"messages": [{"role": "user", "content": f"{i}+1"}]}).encode()
            ex = Exchange(request_id=f"{tag}-{variant}-{i}", variant=label,
                          model_version=VERSIONS[variant],
                          method="POST", path="/v1/chat/completions", started_at=time.time(),
                          request_body=body, status=200, response_body=ANSWER)  # fmt: skip
            f.write(json.dumps(build_record(ex, RegexRedactor([]))) + "\n")


@pytest.fixture
def servers() -> Iterator[tuple[SseServer, SseServer]]:
    wrong = {"3+3"}
    with (
        sse_server(solve, variant="stable") as stable,
        sse_server(lambda p: "0" if p in wrong else solve(p), variant="canary") as canary,
    ):
        yield stable, canary


@pytest.fixture
def target(tmp_path: Path, servers: tuple[SseServer, SseServer]) -> DirectTarget:
    key = tmp_path / "key"
    key.write_text("s3cret\n")
    t = DirectTarget(urls={"stable": servers[0].url, "canary": servers[1].url},
                     capture=tmp_path / "capture", key_file=key)  # fmt: skip
    t.deploy(Variant("stable", "img", "m", "1", "r1"))
    t.deploy(Variant("canary", "img", "m", "2", "r2"))
    return t


def step_load(tmp_path: Path, target: FakeTarget, **options: object) -> LocustStepLoad:
    golden = write_jsonl(GOLDEN, tmp_path / "golden.jsonl")
    settings = {"paired": PairedSettings(pairs=6, concurrency=2), **options}
    window = WindowOptions(**settings)  # type: ignore[arg-type]
    return LocustStepLoad(ReleaseSpec(model="models:/m/2"), target, golden, options=window)


def test_enough_user_traffic_sends_no_load_and_the_paired_window_gives_speed_and_quality(
    tmp_path: Path, target: DirectTarget, servers: tuple[SseServer, SseServer]
) -> None:
    users(target.capture, "canary", 5, "earlier")  # before this analysis: not its evidence
    load = step_load(tmp_path, target)
    users(target.capture, "canary", 12)
    users(target.capture, "stable", 12)
    evidence = load.run(50, 20, tmp_path / "run")

    assert "locust" not in evidence.reports
    assert not (tmp_path / "run" / "requests.jsonl").exists()
    assert evidence.traffic == {"user": {"canary": 12, "stable": 12},
                                "paired": {"canary": 6, "stable": 6}}  # fmt: skip
    prompts = [sorted(b["messages"][-1]["content"] for _, b, _ in s.seen) for s in servers]
    assert prompts[0] == prompts[1] == sorted(ex.prompt for ex in GOLDEN)
    assert {h["Authorization"] for s in servers for _, _, h in s.seen} == {"Bearer s3cret"}

    source, window = evidence.source, evidence.window_s
    for variant in ("stable", "canary"):
        latency = source.query(Metric.LATENCY, variant, window).values
        ttft = source.query(Metric.TTFT, variant, window).values
        assert latency is not None
        assert ttft is not None
        assert latency.size == 6
        assert (ttft < latency).all()
    diff = source.query(Metric.QUALITY_PAIRED, "canary", window).values
    assert diff is not None
    assert sorted(diff) == [-1.0, 0, 0, 0, 0, 0]
    agreement = source.query(Metric.AGREEMENT, "canary", window)
    assert (agreement.successes, agreement.failures) == (5, 1)
    errors = source.query(Metric.ERRORS, "canary", window)
    assert (errors.n, errors.failures) == (18, 0)  # 12 users + 6 paired
    assert evidence.health.requests == 18
    assert evidence.reports["paired"].is_file()


def test_successive_runs_send_the_next_rows(tmp_path: Path, target: DirectTarget) -> None:
    load = step_load(tmp_path, target, paired=PairedSettings(pairs=4))
    users(target.capture, "canary", 50)
    users(target.capture, "stable", 50)
    first = load.run(50, 8, tmp_path / "a").source.query(Metric.QUALITY, "stable", 60)
    assert first.n == 4
    users(target.capture, "canary", 50, "later")
    users(target.capture, "stable", 50, "later")
    second = load.run(50, 8, tmp_path / "b")
    rows = [json.loads(line)["row_id"] for line in (tmp_path / "b" / "paired.jsonl").open()]
    assert sorted(set(rows)) == ["golden-0", "golden-1", "golden-4", "golden-5"]
    assert second.traffic["user"] == {"canary": 50, "stable": 50}  # only since the last run


def test_no_user_traffic_and_the_load_disabled_is_no_traffic(
    tmp_path: Path, target: DirectTarget, servers: tuple[SseServer, SseServer]
) -> None:
    with pytest.raises(NoTrafficError, match="nothing to judge"):
        step_load(tmp_path, target, load_enabled=False).run(10, 400, tmp_path / "run")
    assert not any(s.seen for s in servers)  # and nothing was sent


def test_a_target_without_direct_endpoints_cannot_run_the_paired_window(tmp_path: Path) -> None:
    target = FakeTarget()
    target.deploy(Variant("stable", "img", "m", "1", "r1"))
    target.deploy(Variant("canary", "img", "m", "2", "r2"))
    with pytest.raises(PairedWindowError, match="endpoints"):
        step_load(tmp_path, target, load_enabled=False).run(0, 10, tmp_path / "run")


def _batch(folder: Path, name: str, canary: int, stable: int, answer: str = "2") -> Path:
    """One batch's record file: `canary` and `stable` answered rows (and one failed)."""
    path = folder / f"{name}.jsonl"
    rows = [{"variant": "canary", "prompt": f"{i}+1", "completion": answer, "ok": True}
            for i in range(canary)]  # fmt: skip
    rows += [{"variant": "stable", "prompt": f"{i}+1", "completion": "2", "ok": True}
             for i in range(stable)]  # fmt: skip
    rows += [{"variant": "canary", "prompt": "x", "completion": "", "ok": False}]  # not counted
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """detect_drift replaced by one that records (reference rows, current rows)."""
    import infra.load.step_drift
    from validation.drift import DriftResult

    calls: list[tuple[int, int]] = []

    def counted(reference: Any, current: Any, **_: object) -> DriftResult:
        calls.append((len(reference), len(current)))
        return DriftResult(drift_share=0.0, dataset_drift=False, columns=(),
                           n_current=len(current), n_reference=len(reference))  # fmt: skip

    monkeypatch.setattr(infra.load.step_drift, "detect_drift", counted)
    return calls


def test_drift_is_computed_until_a_step_has_a_deciding_result_then_not_again(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _counted(monkeypatch)
    load = step_load(tmp_path, target)
    need = load.spec.canary.policy.min_samples_for(load.spec.canary.policy.drift)
    small, big = _batch(tmp_path, "s", 5, 45), _batch(tmp_path, "b", need, 9 * need)
    seen = [load._step_drift(10, 0.0, [f], tmp_path) for f in (small, big, big)]
    seen += [load._step_drift(25, 0.0, [f], tmp_path) for f in (big, big)]

    # 10 %: too few rows, then a deciding result, then nothing; 25 %: computed afresh once
    assert [d.n_current if d else None for d in seen] == [5, 5 + need, None, need, None]
    assert calls == [(45, 5), (45 + 9 * need, 5 + need), (9 * need, need)]


def test_a_policy_without_the_drift_check_never_computes_drift(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.load.step_drift

    monkeypatch.setattr(infra.load.step_drift, "detect_drift", lambda *a, **k: pytest.fail("ran"))
    golden = write_jsonl(GOLDEN, tmp_path / "golden.jsonl")
    spec = ReleaseSpec(model="models:/m/2", canary={"policy": {"drift": {"enabled": False}}})
    load = LocustStepLoad(spec, target, golden, options=WindowOptions(paired=None))
    assert load._step_drift(10, 0.0, [_batch(tmp_path, "b", 500, 500)], tmp_path) is None


def test_drift_is_judged_on_all_of_a_steps_rows_not_the_last_batch(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded machine gave 4 canary rows per batch: judged batch by batch, drift never
    had the 100 it needs and an identical canary was rolled back at the deadline."""
    calls = _counted(monkeypatch)
    load = step_load(tmp_path, target)
    need = load.spec.canary.policy.min_samples_for(load.spec.canary.policy.drift)
    per = need // 3 + 1
    seen = [load._step_drift(10, 0.0, [_batch(tmp_path, f"b{i}", per, 9 * per)], tmp_path)
            for i in range(3)]  # fmt: skip
    assert [d.n_current if d else None for d in seen] == [per, 2 * per, 3 * per]
    assert load._step_drift(10, 0.0, [_batch(tmp_path, "b3", per, 9)], tmp_path) is None
    fresh = load._step_drift(25, 0.0, [_batch(tmp_path, "c0", 5, 5)], tmp_path)
    assert fresh is not None
    assert fresh.n_current == 5  # a new step starts from its own rows
    assert calls[-1] == (5, 5)


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_step_drift_compares_the_canary_with_the_stable_not_the_evaluation_set(
    tmp_path: Path,
) -> None:
    """Regression: the reference was the evaluation set's expected responses. A canary that
    answers exactly like the stable, in sentences where the set expects a word, drifted on
    output_length and answer_format (share 0.5, the limit) and a good model was rolled
    back; now both sides are the same step's answers, and only a real change drifts."""
    rows = []
    for i in range(300):
        prompt = f"What is the capital of country {i % 40}?"
        answer = f"The capital of country {i % 40} is City{i % 40}, on the river."
        for variant in ("stable", "canary"):
            rows.append({"variant": variant, "prompt": prompt, "completion": answer, "ok": True})
    golden = write_jsonl([Example(f"What is the capital of country {i}?", f"City{i}")
                          for i in range(40)], tmp_path / "golden.jsonl")  # fmt: skip
    spec = ReleaseSpec(model="models:/m/2")

    def drift_of(records: Path) -> Any:
        load = LocustStepLoad(spec, FakeTarget(), golden, options=WindowOptions(paired=None))
        return load._step_drift(10, 0.0, [records], tmp_path)

    same = drift_of(_write(tmp_path / "same.jsonl", rows))
    assert same is not None
    assert (same.n_reference, same.n_current) == (300, 300)
    assert not same.dataset_drift, [c for c in same.columns if c.drifted]

    broken = [dict(r, completion='{"capital": ') if r["variant"] == "canary" else r for r in rows]
    bad = drift_of(_write(tmp_path / "bad.jsonl", broken))
    assert bad is not None
    assert bad.dataset_drift
    assert {"output_length", "answer_format"} <= {c.column for c in bad.columns if c.drifted}


def test_a_first_release_with_no_stable_has_no_drift_to_judge(tmp_path: Path) -> None:
    golden = write_jsonl(GOLDEN, tmp_path / "golden.jsonl")
    load = LocustStepLoad(ReleaseSpec(model="models:/m/2"), FakeTarget(), golden,
                          options=WindowOptions(paired=None))  # fmt: skip
    assert load._step_drift(10, 0.0, [_batch(tmp_path, "c", 300, 0)], tmp_path) is None


def test_step_drift_reads_all_captured_traffic_of_the_step(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a capture directory every request the servers answered in the step counts
    (users' too), not only the load generator's own records."""
    calls = _counted(monkeypatch)
    users(target.capture, "stable", 30)
    users(target.capture, "canary", 7)
    load = step_load(tmp_path, target)
    records = [_batch(tmp_path, "ignored", 50, 50)]  # the capture already holds every request
    drift = load._step_drift(10, time.time() - 60, records, tmp_path)
    assert drift is not None
    assert calls == [(30, 7)]
    users(target.capture, "canary", 3)
    load._step_drift(10, time.time() + 60, [], tmp_path)  # same step: counts from its start
    assert calls[-1] == (30, 10)


def test_a_promoted_stable_that_still_labels_itself_canary_counts_as_the_stable(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: a server's capture label is fixed at container start, so the stable of
    every release after the first promote writes 'canary'. Read by label, its traffic was the
    canary's and the step's drift had no stable rows: the demo's retrained model was rolled
    back for a drift check that never got a result. Rows are labelled by model version."""
    calls = _counted(monkeypatch)
    users(target.capture, "stable", 30, label="canary")  # v1, promoted from canary earlier
    users(target.capture, "canary", 7)
    users(target.capture, "canary", 4, tag="gone")
    (target.capture / "capture-canary-h-0.jsonl").write_text(  # a version no longer deployed
        (target.capture / "capture-canary-h-2.jsonl").read_text().replace('"2"', '"0"')
    )
    load = step_load(tmp_path, target)
    state = target.status()
    roles = {state.stable.model_version: "stable", state.canary.model_version: "canary"}  # type: ignore[union-attr]
    drift = load._step_drift(10, time.time() - 60, [], tmp_path, roles)
    assert drift is not None
    assert calls == [(30, 11)]  # v0's rows are neither variant's evidence
    from validation.metrics.traffic import user_counts

    assert user_counts(target.capture, time.time() - 60, roles) == {"stable": 30, "canary": 11}
    assert user_counts(target.capture, time.time() - 60) == {"canary": 52}  # as labelled


def test_servers_that_capture_nothing_leave_drift_to_the_loads_own_records(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression (e2e test_faults, stand-in servers): an empty capture directory meant no
    drift rows at all, drift never decided and a good canary was rolled back at the
    deadline. With no captured rows of one variant, the step's own records count."""
    calls = _counted(monkeypatch)
    target.capture.mkdir(parents=True)
    users(target.capture, "stable", 5)  # the stable captures, the canary does not
    load = step_load(tmp_path, target)
    drift = load._step_drift(10, time.time() - 60, [_batch(tmp_path, "b", 20, 60)], tmp_path)
    assert drift is not None
    assert calls == [(60, 20)]
