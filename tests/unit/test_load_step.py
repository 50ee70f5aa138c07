"""LocustStepLoad with users' traffic enough: no Locust, the paired window on two local servers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

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


def users(folder: Path, variant: str, n: int, tag: str = "user") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"capture-{variant}-h-1.jsonl").open("a", encoding="utf-8") as f:
        for i in range(n):
            ex = Exchange(request_id=f"{tag}-{variant}-{i}", variant=variant, model_version="1",
                          method="POST", path="/v1/chat/completions", started_at=time.time(),
                          status=200, response_body=ANSWER)  # fmt: skip
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


def test_drift_is_computed_until_a_step_has_a_deciding_result_then_not_again(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    from validation.drift import DriftResult

    sizes = iter([(10, 500), (300, 500), (300, 500), (300, 500)])  # rows: current, reference
    calls: list[int] = []

    def fake_drift(self: LocustStepLoad, result: object, out_dir: Path) -> DriftResult:
        current, reference = next(sizes)
        calls.append(current)
        return DriftResult(drift_share=0.0, dataset_drift=False, columns=(),
                           n_current=current, n_reference=reference)  # fmt: skip

    monkeypatch.setattr(LocustStepLoad, "_drift", fake_drift)
    load = step_load(tmp_path, target)
    need = load.spec.canary.policy.min_samples_for(load.spec.canary.policy.drift)
    assert 10 < need <= 300
    seen = [load._step_drift(w, None, tmp_path) for w in (10, 10, 10, 25, 25)]

    # 10 %: too few rows, then a deciding result, then nothing; 25 %: computed afresh once
    assert [d.n_current if d else None for d in seen] == [10, 300, None, 300, None]
    assert calls == [10, 300, 300]


def test_a_policy_without_the_drift_check_never_computes_drift(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LocustStepLoad, "_drift", lambda *a: pytest.fail("computed"))
    golden = write_jsonl(GOLDEN, tmp_path / "golden.jsonl")
    spec = ReleaseSpec(model="models:/m/2", canary={"policy": {"drift": {"enabled": False}}})
    load = LocustStepLoad(spec, target, golden, options=WindowOptions(paired=None))
    assert load._step_drift(10, None, tmp_path) is None


def test_drift_is_judged_on_all_of_a_steps_canary_rows_not_the_last_batch(
    tmp_path: Path, target: DirectTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A loaded machine gave 4 canary rows per batch: judged batch by batch, drift never
    had the 100 it needs and an identical canary was rolled back at the deadline."""
    import validation.drift
    from validation.drift import DriftResult

    def counted(reference: object, current: object, **_: object) -> DriftResult:
        return DriftResult(drift_share=0.0, dataset_drift=False, columns=(),
                           n_current=len(current), n_reference=500)  # type: ignore[arg-type]  # fmt: skip

    monkeypatch.setattr(validation.drift, "detect_drift", counted)
    load = step_load(tmp_path, target)
    need = load.spec.canary.policy.min_samples_for(load.spec.canary.policy.drift)

    def batch(name: str, canary: int) -> object:
        path = tmp_path / f"{name}.jsonl"
        rows = [{"variant": "canary", "prompt": f"{i}+1", "completion": "x"} for i in range(canary)]
        rows += [{"variant": "stable", "prompt": "1+1", "completion": "2"}] * (9 * canary)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return type("Result", (), {"results": path})()

    per_batch = need // 3 + 1
    seen = [load._step_drift(10, batch(f"b{i}", per_batch), tmp_path) for i in range(3)]
    assert [d.n_current if d else None for d in seen] == [per_batch, 2 * per_batch, 3 * per_batch]
    assert load._step_drift(10, batch("b3", per_batch), tmp_path) is None  # decided at 10 %
    fresh = load._step_drift(25, batch("c0", 5), tmp_path)
    assert fresh is not None
    assert fresh.n_current == 5  # a new step starts from its own rows
