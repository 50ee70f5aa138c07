"""A real vLLM server started by the launcher (serving venv) on the trained demo model."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.vllm_server import Server, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def vllm_server(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("vllm")
    with serve(trained_model, work, variant="canary", model_version="7") as server:
        yield server


def chat(server: Server, prompt: str, **headers: str) -> httpx.Response:
    body = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 8,
    }
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers=server.headers(**headers),
        timeout=60,
    )


def test_golden_prompts_get_correct_answers(vllm_server: Server, trained_model: Path) -> None:
    lines = (trained_model / "golden.jsonl").read_text().splitlines()[:8]
    examples = [json.loads(line) for line in lines]
    answers = []
    for ex in examples:
        resp = chat(vllm_server, ex["prompt"])
        assert resp.status_code == 200, resp.text
        answers.append(resp.json()["choices"][0]["message"]["content"].strip())
    correct = sum(a == ex["answer"] for a, ex in zip(answers, examples, strict=True))
    assert correct >= len(examples) - 1, list(zip(answers, examples, strict=True))


def test_responses_carry_request_id_variant_and_version(vllm_server: Server) -> None:
    resp = chat(vllm_server, "1+2", **{"X-Request-ID": "it-abc"})
    assert resp.headers["x-request-id"] == "it-abc"
    assert resp.headers["x-canaryflow-variant"] == "canary"
    assert resp.headers["x-canaryflow-model-version"] == "7"
    health = httpx.get(f"{vllm_server.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.headers["x-canaryflow-variant"] == "canary"


def test_v1_needs_the_key_and_health_does_not(vllm_server: Server) -> None:
    assert httpx.get(f"{vllm_server.url}/v1/models", timeout=5).status_code == 401
    assert httpx.get(f"{vllm_server.url}/metrics", timeout=5).status_code == 200


def test_each_exchange_lands_in_the_capture_file(vllm_server: Server) -> None:
    request_id = f"it-{uuid.uuid4().hex}"
    answer = chat(vllm_server, "20+22", **{"X-Request-ID": request_id}).json()
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        rows = [json.loads(x) for p in vllm_server.capture_dir.glob("*.jsonl")
                for x in p.read_text().splitlines()]  # fmt: skip
        record = next((r for r in rows if r["request_id"] == request_id), None)
        time.sleep(0.2)
    assert record is not None
    assert record["prompt"] == "20+22"
    assert record["variant"] == "canary"
    assert record["completion"] == answer["choices"][0]["message"]["content"]
    assert record["completion_tokens"] == answer["usage"]["completion_tokens"]
    metrics = httpx.get(f"{vllm_server.url}/metrics", timeout=5).text
    assert 'canaryflow_capture_records_total{outcome="written"}' in metrics


def test_a_served_model_that_cannot_judge_is_named_at_validate(
    vllm_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The judge probe against real vLLM: a wrong key and an unknown model are refused by the
    endpoint, and a model that answers but cannot follow MLflow's judge prompt (tiny-chat: a
    64-token context, arithmetic only) fails its one real judgement, all before any release."""
    from infra.errors import JudgeAnswerError, JudgeUnreachableError
    from tests.fixtures.vllm_server import API_KEY
    from validation.evaluation.rows import EvalRow
    from validation.evaluation.scorers import check_scorers
    from validation.evaluation.spec import ScorerSpec

    def spec(model: str = "tiny-chat") -> ScorerSpec:
        judge = {"endpoint": f"{vllm_server.url}/v1", "model": model, "api_key_env": "IT_JUDGE"}
        return ScorerSpec(kind="judge", judge=judge)

    rows = [EvalRow(row_id="q1", messages=({"role": "user", "content": "1+2"},),
                    expectations={"expected_response": "3"})]  # fmt: skip
    monkeypatch.setenv("IT_JUDGE", "not-the-key")
    with pytest.raises(JudgeUnreachableError, match=r"refused the key \(HTTP 401\)"):
        check_scorers([spec()], rows)
    monkeypatch.setenv("IT_JUDGE", API_KEY)
    with pytest.raises(JudgeUnreachableError, match=r"HTTP 404 for model 'no-such-judge'"):
        check_scorers([spec("no-such-judge")], rows)
    with pytest.raises(JudgeAnswerError, match=r"judge 'judge' (failed on row q1|.*answered)"):
        check_scorers([spec()], rows)
