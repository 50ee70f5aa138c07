"""The demo's pure pieces: reading verdicts and reasons back, time to the first canary request."""

from __future__ import annotations

import json
from pathlib import Path

from infra.demo.story import Result, first_canary_request
from infra.prefect_api import verdict_of

RECORD = """# Verdict: rolled_back

**tiny-chat v3** — release `tiny-chat-20261122t083746z-984793`, image `img`

## Reasons

- failed (1/1): quality: accuracy canary 38.8%
- second reason

## Offline checks

- not a reason
"""


def test_the_verdict_is_the_first_heading_of_the_record() -> None:
    assert verdict_of(RECORD) == "rolled_back"
    assert verdict_of("# Drift check: no_drift\n") == "no_drift"
    assert verdict_of("") is None
    assert verdict_of(None) is None


def test_reasons_and_release_id_come_from_the_record() -> None:
    result = Result("v3", "id", "COMPLETED", "rolled_back", RECORD, 1.0)
    assert result.reasons == ["failed (1/1): quality: accuracy canary 38.8%", "second reason"]
    assert result.release_id == "tiny-chat-20261122t083746z-984793"


def test_first_canary_request_is_the_earliest_canary_record(tmp_path: Path) -> None:
    for step, rows in {"step-10-0": [("stable", 5.0), ("canary", 7.5)],
                       "step-10-1": [("canary", 6.0), ("canary", 9.0)]}.items():  # fmt: skip
        (tmp_path / step).mkdir()
        lines = [json.dumps({"variant": v, "ts": ts}) for v, ts in rows] + ["{torn"]
        (tmp_path / step / "requests.jsonl").write_text("\n".join(lines))
    assert first_canary_request(tmp_path) == 6.0
    assert first_canary_request(tmp_path / "absent") is None
