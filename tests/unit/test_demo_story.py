"""The demo's pure pieces: reading verdicts and reasons back, time to the first canary request."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from infra.demo.story import Result, first_canary_request, heartbeat
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


def test_training_shows_its_progress_while_the_demo_waits(capsys: pytest.CaptureFixture[str],
                                                          ) -> None:  # fmt: skip
    """make demo sat silent for 800 s while v1 trained; fit() logs its step, the demo's
    heartbeat prints it every few seconds."""
    import torch

    from infra.demo_model import fit
    from infra.demo_model.train import TrainConfig, _data, _model

    config = TrainConfig(steps=30, batch_size=4, hidden_size=64, num_layers=1, num_heads=1,
                         n_heldout=10)  # fmt: skip
    _, stream, tok = _data(config)
    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as mp, heartbeat("v9: train", every_s=0.05):
        mp.setattr(fit, "PROGRESS_EVERY_S", 0.0)  # every step: the test is fast
        fit.fit(_model(config, tok), tok, stream, config)
        time.sleep(0.2)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "v9: train" in ln]
    assert lines, "no progress line was printed"
    assert any("step 30/30, loss" in ln for ln in lines), lines
    after = capsys.readouterr().out
    time.sleep(0.2)
    assert not capsys.readouterr().out, f"the heartbeat went on after its block: {after!r}"
