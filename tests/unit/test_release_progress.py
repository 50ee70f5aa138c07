"""The running release's Prefect progress bar (tasks/progress.py)."""

from __future__ import annotations

from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

from flows.release import release
from infra.spec import ReleaseSpec
from tasks.progress import PHASES, ReleaseProgress, canary_percent
from tests.fixtures.release_ports import (
    harness,  # noqa: F401 (autouse fixture)
    make_ports,
    serve,
)


def test_each_step_takes_its_share_of_the_canary_span() -> None:
    steps = [10, 25, 50]
    shares = [canary_percent(steps, w) for w in steps]
    assert shares[0] == PHASES["canary"]
    assert shares == sorted(shares)
    assert shares[-1] < PHASES["approval"]


def test_outside_a_flow_run_nothing_is_shown_and_nothing_fails() -> None:
    shown = ReleaseProgress("r1", [10, 50])
    shown.phase("validate")
    shown.canary(50, "canary 50%: batch 2, 300 requests, 40 s — latency.p99 pass")
    shown.phase("deploy")  # a bar never moves back
    assert shown.artifact is None
    assert shown.percent == canary_percent([10, 50], 50)


def test_a_release_leaves_its_bar_at_100_naming_the_verdict(tmp_path: Path) -> None:
    ports = make_ports(tmp_path)
    serve(ports, tmp_path, "tiny-chat", "v1", "v2")
    outcome = release(ReleaseSpec(model="models:/tiny-chat@challenger"), ports)
    assert outcome.verdict == "promoted"
    with get_client(sync_client=True) as client:
        bars = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"]))
        )
    mine = [b for b in bars if outcome.release_id in str(b.description)]
    assert len(mine) == 1, [b.description for b in bars]
    assert mine[0].data == 100.0
    assert str(mine[0].description).endswith("promoted")
