"""The scheduled drift check's logic: which captured records count, and the verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from infra.load.wire import SYNTHETIC_REQUEST_PREFIX
from infra.monitor.drift_watch import DriftCheckSpec, capture_window, evaluation_reference, judge
from validation.drift import frame_from_examples
from validation.evaluation.spec import EvaluationSpec
from validation.golden import Example, TaskSpec, sample

SPEC = DriftCheckSpec(model_name="team-model", evaluation=EvaluationSpec(dataset="team-eval"))
NOW = 1_800_000_000.0


def record(ex: Example, ts: float, *, rid: str = "user-1", status: int = 200) -> dict[str, object]:
    return {"ts": datetime.fromtimestamp(ts, UTC).isoformat(), "request_id": rid,
            "variant": "stable", "model_version": "1", "status": status, "latency_ms": 5.0,
            "ttft_ms": None, "prompt": ex.prompt, "completion": ex.answer,
            "truncated": False}  # fmt: skip


def write_capture(path: Path, records: list[dict[str, object]]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "capture-stable-h-1.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    return path


def test_the_window_keeps_live_successful_requests_only(tmp_path: Path) -> None:
    ex = Example(prompt="1+2", answer="3")
    capture = write_capture(tmp_path / "cap", [
        record(ex, NOW - 10),                                              # kept
        record(ex, NOW - 7200),                                            # too old
        record(ex, NOW - 5, rid=SYNTHETIC_REQUEST_PREFIX + "abc"),         # canary load test
        record(ex, NOW - 5, status=500),                                   # failed
    ])  # fmt: skip
    window = capture_window(capture, 3600, now=NOW)
    assert len(window.frame) == 1
    assert (window.n_seen, window.n_load_tests, window.n_failed) == (3, 1, 1)
    assert len(capture_window(capture, 3600, now=NOW, include_load_tests=True).frame) == 2
    assert len(capture_window(capture, 1, now=NOW, since=NOW - 7300).frame) == 2  # since wins


def test_no_capture_directory_is_an_empty_window(tmp_path: Path) -> None:
    window = capture_window(tmp_path / "absent", 60, now=NOW)
    assert window.frame.empty
    assert window.n_seen == 0


def test_too_few_rows_is_inconclusive_and_says_what_is_needed(tmp_path: Path) -> None:
    capture = write_capture(tmp_path, [record(e, NOW - 1) for e in sample(TaskSpec(), 20, 1)])
    verdict = judge(capture_window(capture, 60, now=NOW), pd.DataFrame(), SPEC)
    assert verdict.status == "inconclusive"
    assert "20 live requests in the window, 100 needed" in verdict.reason
    assert not verdict.detected
    assert verdict.table() == []


@pytest.mark.parametrize(
    ("live", "status"),
    [(TaskSpec(), "no_drift"), (TaskSpec(min_operand=100, max_operand=999), "drift")],
)
def test_live_traffic_is_judged_against_the_reference(
    tmp_path: Path, live: TaskSpec, status: str
) -> None:
    reference = frame_from_examples(sample(TaskSpec(), 500, seed=1))
    capture = write_capture(tmp_path / "cap", [record(e, NOW - 1) for e in sample(live, 300, 2)])
    html = tmp_path / "drift.html"
    verdict = judge(capture_window(capture, 60, now=NOW), reference, SPEC,
                    champion="3", html_path=html)  # fmt: skip
    assert verdict.status == status
    payload = verdict.event_payload()
    assert payload["model"] == "team-model"
    assert payload["champion_version"] == "3"
    assert payload["n_current"] == 300
    assert payload["report"] == str(html)
    assert html.is_file()
    if status == "drift":
        assert "prompt_length" in payload["drifted_columns"]
    markdown = verdict.markdown()
    assert markdown.startswith(f"# Drift check: {status}")
    assert "| prompt_length | ks |" in markdown


def test_a_drift_check_names_its_model_and_its_reference_set() -> None:
    """No demo defaults: a team's check says which model and which evaluation set."""
    with pytest.raises(ValueError, match="needs a reference: set `evaluation`"):
        DriftCheckSpec.model_validate({"model_name": "team-model"})
    with pytest.raises(ValueError, match="model_name"):
        DriftCheckSpec.model_validate({"evaluation": {"dataset": "team-eval"}})


def test_an_evaluation_set_without_answers_compares_prompts_only(tmp_path: Path) -> None:
    """Regression: a set judged by LLM judges has no expected responses; its empty reference
    completions made every model's live outputs drift (output_length, answer_format)."""
    from validation.evaluation.rows import from_records

    def rows(answers: bool) -> list[dict[str, object]]:
        return [{"inputs": {"messages": [{"role": "user", "content": ex.prompt}]},
                 "expectations": {"expected_response": ex.answer} if answers else {}}
                for ex in sample(TaskSpec(), 300, seed=1)]  # fmt: skip

    bare = from_records(rows(False), "judged", "test")
    frame, outputs = evaluation_reference(bare.rows)
    assert not outputs
    assert set(frame["completion"]) == {""}
    capture = write_capture(
        tmp_path / "cap", [record(e, NOW - 1) for e in sample(TaskSpec(), 300, 2)]
    )
    window = capture_window(capture, 60, now=NOW)
    blind = judge(window, frame, SPEC, outputs=True)
    assert blind.status == "drift"  # what comparing with empty answers did
    verdict = judge(window, frame, SPEC, outputs=outputs)
    assert verdict.status == "no_drift", verdict.reason
    assert {c.column for c in verdict.result.columns} == {"prompt_length", "prompt"}  # type: ignore[union-attr]
    assert "prompts only" in verdict.reason
    answered, outputs = evaluation_reference(from_records(rows(True), "exact", "test").rows)
    assert outputs
    assert judge(window, answered, SPEC, outputs=outputs).status == "no_drift"
