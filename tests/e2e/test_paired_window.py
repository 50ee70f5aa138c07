"""One step run of the real LocustStepLoad on a DockerTarget: router load, then the paired window.

Two stand-in servers that stream one SSE event per answer character, 10 ms apart, behind
the real HAProxy and Prometheus; Locust sends the top-up through the router, the paired
window sends the golden rows to both containers directly.

    flock /tmp/canaryflow-e2e.lock .venv/bin/python -m pytest tests/e2e/test_paired_window.py -q
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from infra.load.paired import PairedSettings
from infra.load.step import LocustStepLoad, WindowOptions
from infra.spec import ReleaseSpec
from infra.targets.docker import DockerTarget
from tests.fixtures.docker_target import (
    docker_client,
    make_config,
    running_target,
    standin_image,
    variant,
)
from validation.golden import Example, write_jsonl
from validation.metrics.base import Metric

pytestmark = pytest.mark.e2e
GAP_MS = 50  # between the stand-in's events: well above a busy machine's scheduling delay
STREAMING = {"STANDIN_ANSWER": "sum", "STANDIN_STREAM_CHUNK_S": str(GAP_MS / 1000)}
GOLDEN = [Example(f"{a}+{a + 20}", str(2 * a + 20)) for a in range(10, 18)]


@pytest.fixture
def target(tmp_path: Path) -> Iterator[DockerTarget]:
    try:
        client = docker_client()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine ({exc}); start it with infra/bootstrap/docker-up.sh")
    image = standin_image(client)
    with running_target(make_config(tmp_path / "state"), client=client) as target:
        target.deploy(variant(image, "1", "rel-1", role="stable", **STREAMING))
        target.deploy(variant(image, "2", "rel-2", **STREAMING))
        target.set_weights(50)
        yield target


def test_paired_window_streams_the_same_rows_to_both_variants(
    target: DockerTarget, tmp_path: Path
) -> None:
    spec = ReleaseSpec.model_validate(
        {"model": "models:/tiny-chat/2", "load": {"users": 2, "max_step_s": 60}}
    )
    golden = write_jsonl(GOLDEN, tmp_path / "golden.jsonl")
    options = WindowOptions(paired=PairedSettings(pairs=8, concurrency=2))
    evidence = LocustStepLoad(spec, target, golden, options=options).run(50, 20, tmp_path / "run")

    records = [json.loads(line) for line in evidence.reports["paired"].open()]
    rows = {
        v: sorted(r["row_id"] for r in records if r["variant"] == v) for v in ("stable", "canary")
    }
    assert rows["stable"] == rows["canary"] == [f"golden-{i}" for i in range(8)]
    assert all(r["ok"] for r in records), [r["error"] for r in records if not r["ok"]]
    for r in records:
        assert 0 < r["ttft_ms"] < r["latency_ms"]
        assert len(r["itl_ms"]) == 1  # two answer characters, one gap: events not merged
    # Each gap is the server's, timed at arrival (not per read chunk). A client thread kept
    # off the CPU past the gap reads both events at once (0.018 ms on a loaded CI machine),
    # so the median is judged, not every pair.
    gaps = sorted(r["itl_ms"][0] for r in records)
    assert gaps[len(gaps) // 2] > GAP_MS / 2, gaps
    assert {r["model_version"] for r in records} == {"1", "2"}

    source, window = evidence.source, evidence.window_s
    diff = source.query(Metric.QUALITY_PAIRED, "canary", window).values
    assert diff is not None
    assert list(diff) == [0.0] * 8
    assert source.query(Metric.QUALITY, "canary", window).successes == 8
    errors = source.query(Metric.ERRORS, "canary", window)
    assert errors.failures == 0
    assert errors.n == evidence.traffic["load"]["canary"] + 8
    assert "locust" in evidence.reports
    assert "crosscheck" in evidence.reports  # the stand-in has no vLLM histograms: noted there
    print("paired window:", json.dumps({
        "traffic": evidence.traffic, "errors notes": errors.notes,
        "ttft_ms": {v: sorted(r["ttft_ms"] for r in records if r["variant"] == v)
                    for v in ("stable", "canary")},
    }))  # fmt: skip
