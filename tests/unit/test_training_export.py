"""The training data export: users' traffic only, redacted, deduplicated, split by a seeded
order-free rule, and never an evaluation-set prompt."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from infra.errors import EvaluationLeakError, NotEnoughTrainingDataError
from infra.training.export import (
    check_no_evaluation_prompts,
    export_window,
    in_holdout,
    normalize,
)
from infra.training.job import evaluation_prompts
from serving.capture import Exchange, RegexRedactor, build_record

NOW = time.time()
REDACT = RegexRedactor([r"[\w.]+@[\w.]+"])


def record(prompt: str, completion: str = "ok", *, rid: str = "", status: int = 200,
           age_s: float = 60, history: list[dict[str, str]] | None = None,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    """A capture record as the serving middleware writes it (build_record redacts)."""
    messages = [*(history or []), {"role": "user", "content": prompt}]
    body = json.dumps({"model": "m", "messages": messages}).encode()
    reply = json.dumps({"choices": [{"message": {"content": completion}}]}).encode()
    ex = Exchange(request_id=rid or f"user-{random.random()}", variant="stable",
                  model_version="3", method="POST", path="/v1/chat/completions",
                  started_at=NOW - age_s, request_body=body, status=status,
                  response_body=reply)  # fmt: skip
    return {**build_record(ex, REDACT), **extra}


def write_capture(capture: Path, records: list[dict[str, Any]]) -> Path:
    capture.mkdir(exist_ok=True)
    with (capture / "capture-stable-h-1.jsonl").open("w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
        f.write('{"torn": ')  # a live file's last line
    return capture


def export(capture: Path, out: Path, evaluation: list[str] | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {"since": NOW - 3600, "until": NOW, "min_requests": 1,
                            "holdout_fraction": 0.25, "seed": 0, **kw}  # fmt: skip
    return export_window(capture, out, evaluation_prompts=evaluation or [], **args)


def users(n: int) -> list[dict[str, Any]]:
    return [record(f"question {i}", f"answer {i}") for i in range(n)]


def test_only_users_successful_requests_of_the_window_are_kept(tmp_path: Path) -> None:
    recs = [
        *users(20),
        record("load", rid="cf-load-1"), record("paired", rid="cf-load-paired-2"),
        record("smoke", rid="smoke-3"), record("crash", status=500),
        record("old", age_s=7200), record("mail me at bob@example.com", "sure"),
    ]  # fmt: skip
    data = export(write_capture(tmp_path / "cap", recs), tmp_path / "out")
    rows = pd.concat([data.train, data.holdout])
    assert set(rows["prompt"]) == {f"question {i}" for i in range(20)} | {"mail me at [REDACTED]"}
    assert data.counts == {"captured": 25, "generated": 3, "failed": 1, "evaluation": 0,
                           "duplicates": 0}  # fmt: skip
    assert "bob@example.com" not in data.train_path.read_bytes().decode(errors="replace")
    assert json.loads(rows["messages"].iloc[0])[-1]["role"] == "user"


def test_duplicates_collapse_and_feedback_is_kept(tmp_path: Path) -> None:
    recs = [record("2+2", "4") for _ in range(3)] + [
        record("2+2", "4", feedback={"thumbs": "down"}, correction="four"),
        record("2+2", "5"),  # another answer: another row
    ]
    data = export(write_capture(tmp_path / "cap", recs), tmp_path / "out", holdout_fraction=0)
    rows = data.train.sort_values("completion").to_dict("records")
    assert [(r["completion"], r["n_seen"]) for r in rows] == [("4", 4), ("5", 1)]
    assert json.loads(rows[0]["feedback"]) == {"thumbs": "down"}
    assert json.loads(rows[0]["correction"]) == "four"
    assert data.counts["duplicates"] == 3


def test_the_split_is_seeded_by_prompt_and_independent_of_order(tmp_path: Path) -> None:
    recs = [*users(300), record("question 7", "another answer")]
    first = export(write_capture(tmp_path / "a", recs), tmp_path / "out-a")
    random.Random(1).shuffle(recs)
    second = export(write_capture(tmp_path / "b", recs), tmp_path / "out-b")
    assert first.digest == second.digest
    assert len(first.digest) == 64
    assert set(first.train["prompt"]).isdisjoint(first.holdout["prompt"])
    assert 0.15 < len(first.holdout) / 301 < 0.35
    reseeded = export(write_capture(tmp_path / "c", recs), tmp_path / "out-c", seed=1)
    assert set(reseeded.holdout["prompt"]) != set(first.holdout["prompt"])
    assert in_holdout("Question 7 ", 0, 0.25) == in_holdout("question 7", 0, 0.25)


def test_evaluation_prompts_never_enter_the_export(tmp_path: Path) -> None:
    golden = tmp_path / "golden.jsonl"
    rows = [{"prompt": "question 3", "answer": "x"},
            {"inputs": {"messages": [{"role": "user", "content": "Question  5"}]}},
            {"inputs": {"prompt": "question 9"}}]  # fmt: skip
    golden.write_text("".join(json.dumps(r) + "\n" for r in rows))
    banned = evaluation_prompts([golden, tmp_path / "absent.jsonl"])
    assert banned == ["question 3", "Question  5", "question 9"]
    recs = [
        *users(40),
        record("QUESTION 3 "),  # case and spacing do not sneak it in
        record("follow-up", history=[{"role": "user", "content": "question 9"},
                                     {"role": "assistant", "content": "..."}]),
    ]  # fmt: skip
    data = export(write_capture(tmp_path / "cap", recs), tmp_path / "out", banned)
    kept = {normalize(p) for p in pd.concat([data.train, data.holdout])["prompt"]}
    assert kept.isdisjoint({normalize(p) for p in banned})
    assert "follow-up" not in kept
    assert data.counts["evaluation"] == 5  # questions 3, 5, 9, the variant, the follow-up
    for path in (data.train_path, data.holdout_path):  # what the trainer is handed
        check_no_evaluation_prompts(pd.read_parquet(path), {normalize(p) for p in banned}, path)


def test_the_guard_refuses_a_file_with_an_evaluation_prompt(tmp_path: Path) -> None:
    frame = pd.DataFrame({"prompt": ["fine", "question 3"], "messages": ["", ""]})
    with pytest.raises(EvaluationLeakError, match="1 evaluation-set prompt"):
        check_no_evaluation_prompts(frame, {"question 3"}, tmp_path / "train.parquet")


def test_too_few_user_requests_says_how_many_and_how_many_are_needed(tmp_path: Path) -> None:
    recs = users(12) + [record("load", rid=f"cf-load-{i}") for i in range(30)]
    with pytest.raises(NotEnoughTrainingDataError,
                       match=r"12 usable captured user requests in the window, 50 needed "
                             r"\(of 42 captured: 30 canaryflow-generated"):  # fmt: skip
        export(write_capture(tmp_path / "cap", recs), tmp_path / "out", min_requests=50)
    assert not (tmp_path / "out").exists()
    with pytest.raises(NotEnoughTrainingDataError, match="0 usable"):
        export(tmp_path / "no-capture", tmp_path / "out", min_requests=1)


def test_an_export_with_nothing_left_to_train_on_is_refused(tmp_path: Path) -> None:
    seed = next(s for s in range(100) if in_holdout("question 0", s, 0.5))
    capture = write_capture(tmp_path / "cap", users(1))
    with pytest.raises(NotEnoughTrainingDataError, match="all 1 usable requests fell into"):
        export(capture, tmp_path / "out", holdout_fraction=0.5, seed=seed)
