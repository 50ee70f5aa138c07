"""The `judge` scorer: MLflow's make_judge on an OpenAI-compatible endpoint. The endpoint here
is a loopback HTTP server speaking /v1/chat/completions (the unit tier's stand-in for a served
judge; tests/integration/test_vllm_server.py points the probe at real vLLM)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from infra.errors import JudgeAnswerError, JudgeUnreachableError
from validation.evaluation.mlflow_scoring import read_scores
from validation.evaluation.rows import EvalRow
from validation.evaluation.scorers import check_scorers, make_row_scorer, score_row
from validation.evaluation.spec import ScorerSpec


class Judge:
    """A chat endpoint that answers `answer(request body)` and records what it was sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.status = 200
        self.answer = self.by_reference

    @staticmethod
    def by_reference(body: dict[str, Any]) -> str:
        """yes when the user message's outputs equal its expected_response (and for the
        probe's ping, which carries none)."""
        text = body["messages"][-1]["content"]
        if "outputs: " not in text:
            return "pong"
        out = text.split("outputs: ", 1)[1].split("\n", 1)[0]
        ok = json.dumps(json.loads(out)) in text.split("expectations:", 1)[1]
        return json.dumps({"result": "yes" if ok else "no", "rationale": f"compared {out}"})


@pytest.fixture
def endpoint() -> Iterator[tuple[str, Judge]]:
    judge = Judge()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            judge.seen.append((dict(self.headers), body))
            msg = {"role": "assistant", "content": judge.answer(body)}
            out = {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "message": msg, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                             "total_tokens": 2}}  # fmt: skip
            data = json.dumps(out if judge.status == 200 else {"error": "no"}).encode()
            self.send_response(judge.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1", judge
    server.shutdown()


def spec(endpoint: str, **judge: Any) -> ScorerSpec:
    return ScorerSpec(kind="judge", judge={"endpoint": endpoint, "model": "judge-1", **judge})


def row(expected: str) -> EvalRow:
    return EvalRow(row_id="r1", messages=({"role": "user", "content": "Capital of France?"},),
                   expectations={"expected_response": expected})  # fmt: skip


def test_the_judge_scores_yes_and_no_with_its_rationale(
    endpoint: tuple[str, Judge], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, judge = endpoint
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-test")
    s = spec(url, api_key_env="JUDGE_KEY")
    good, bad = score_row(s, row("Paris"), "Paris"), score_row(s, row("Paris"), "Lyon")
    assert (good.value, bad.value) == (1.0, 0.0)
    assert "Lyon" in bad.rationale
    headers, body = judge.seen[0]
    assert headers["Authorization"] == "Bearer sk-judge-test"
    assert body["model"] == "judge-1"
    assert body["temperature"] == 0
    # MLflow's judge prompt: its instructions, the row's inputs, the output, the reference
    sent = json.dumps(body["messages"])
    assert "Capital of France?" in sent
    assert "Paris" in sent
    assert body["response_format"]["type"] == "json_schema"
    assert make_row_scorer([s])(row("Paris"), "Paris") == 1.0


def test_validate_probes_the_judge_before_anything_runs(
    endpoint: tuple[str, Judge], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, judge = endpoint
    check_scorers([spec(url)], [row("Paris")])  # a ping, then one real judgement
    assert len(judge.seen) == 2
    judge.answer = lambda body: "42"  # a model that does not follow the judge format
    with pytest.raises(JudgeAnswerError, match=r"judge 'judge' failed on row r1"):
        check_scorers([spec(url, max_tokens=7)], [row("Paris")])
    judge.answer = lambda body: json.dumps({"result": "maybe", "rationale": "unsure"})
    with pytest.raises(JudgeAnswerError, match=r"answered 'maybe' .* not yes or no"):
        check_scorers([spec(url, max_tokens=8)], [row("Paris")])
    judge.status = 401
    with pytest.raises(JudgeUnreachableError, match=r"refused the key \(HTTP 401\)"):
        check_scorers([spec(url, max_tokens=9)], [row("Paris")])
    judge.status = 404
    with pytest.raises(JudgeUnreachableError, match=r"HTTP 404 for model 'judge-1'"):
        check_scorers([spec(url, max_tokens=10)], [row("Paris")])
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(JudgeUnreachableError, match=r"NO_SUCH_KEY_VAR is not set"):
        check_scorers([spec(url, api_key_env="NO_SUCH_KEY_VAR")], [row("Paris")])


def test_an_unreachable_judge_is_named_at_once() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JudgeUnreachableError, match=r"did not answer .* start the judge"):
        check_scorers([spec(f"http://127.0.0.1:{port}/v1")], [row("Paris")])


def test_a_judge_spec_is_checked_when_read() -> None:
    with pytest.raises(ValidationError, match="needs `judge"):
        ScorerSpec(kind="judge")
    with pytest.raises(ValidationError, match="is for kind judge"):
        ScorerSpec(kind="exact", judge={"endpoint": "http://j/v1", "model": "m"})
    with pytest.raises(ValidationError, match=r"at least one of \{\{ inputs \}\}"):
        spec("http://j/v1", instructions="Is it good?")
    with pytest.raises(ValidationError, match="api_key_env"):
        spec("http://j/v1", api_key_env="sk-a-real-key-pasted-here!")
    with pytest.raises(ValidationError, match="endpoint"):
        spec("judge:8000")


def test_a_broken_judgement_in_mlflow_results_is_an_error_not_a_zero() -> None:
    import pandas as pd  # type: ignore[import-untyped]

    s = spec("http://j/v1")
    ok = {"assessment_name": "judge", "feedback": {"value": "no"}, "rationale": "differs"}
    frame = pd.DataFrame([{"tags": {"row_id": "r1"}, "assessments": [ok]}])
    assert read_scores(frame, [s])["r1"]["judge"].value == 0.0
    broken = {"assessment_name": "judge", "feedback": {"value": None, "error": "TypeError"}}
    frame = pd.DataFrame([{"tags": {"row_id": "r1"}, "assessments": [broken]}])
    with pytest.raises(JudgeAnswerError, match="not yes or no"):
        read_scores(frame, [s])
