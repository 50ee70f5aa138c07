"""The `judge` scorer: MLflow's LLM judge (`mlflow.genai.judges.make_judge`) pointed at any
OpenAI-compatible chat endpoint, answering yes/no with a rationale.

    scorers:
      - kind: judge
        judge: {endpoint: "http://judge:8000/v1", model: judge-1, api_key_env: JUDGE_KEY,
                instructions: "Is {{ outputs }} as correct as {{ expectations }} for {{ inputs }}?"}

The judge is MLflow's, not ours: its prompt, its structured-output request
(`response_format` with the yes/no schema) and its Feedback (value, rationale, source
LLM_JUDGE) land as the run's assessments like every scorer's. What is ours, and why:
- `probe(spec)` runs at validate, before anything is registered or deployed. MLflow's
  client retries a refused connection for about three minutes and raises a TypeError on an
  answer that is not a JSON object (measured on 3.17.2), so one short request of our own
  tells an unreachable endpoint, a refused key or an unknown model apart, and then one
  real judgement must come back as yes or no; each is a named error.
- A judgement that is not yes/no (MLflow passes any string through) is an error, never a
  silent "no": a broken judge must not fail a good model's rows.
- The key is read from the environment variable the spec names and sent as a bearer
  header; the spec (which is logged) holds only the variable's name.

A judge is a model: scores of the same outputs are reused across releases only while the
spec (endpoint, model, instructions) is the same (mlflow_scoring.scores_key).
"""

from __future__ import annotations

import functools
import json
import os
from typing import TYPE_CHECKING, Any, Literal

import httpx

from infra.errors import JudgeAnswerError, JudgeUnreachableError

if TYPE_CHECKING:
    from validation.evaluation.rows import EvalRow
    from validation.evaluation.scorers import Score
    from validation.evaluation.spec import JudgeSpec, ScorerSpec

VERDICTS = ("yes", "no")


def chat_url(judge: JudgeSpec) -> str:
    return judge.endpoint.rstrip("/") + "/chat/completions"


def headers(judge: JudgeSpec) -> dict[str, str]:
    """The bearer header from the environment variable the spec names (none if unnamed)."""
    if judge.api_key_env is None:
        return {}
    key = os.environ.get(judge.api_key_env)
    if not key:
        raise JudgeUnreachableError(
            f"the judge's API key variable {judge.api_key_env} is not set in the worker's "
            "environment: set it there (the spec names the variable, never the key)"
        )
    return {"Authorization": f"Bearer {key}"}


@functools.cache
def _judge(spec_json: str) -> Any:
    from mlflow.genai.judges import make_judge

    from validation.evaluation.spec import ScorerSpec

    spec = ScorerSpec.model_validate_json(spec_json)
    assert spec.judge is not None
    # MLflow's openai provider insists on this variable even when the Authorization header
    # is given; the header is what the endpoint sees.
    os.environ.setdefault("OPENAI_API_KEY", "unused-the-judge-key-is-a-header")
    return make_judge(
        name=spec.label,
        instructions=spec.judge.instructions,
        model=f"openai:/{spec.judge.model}",
        base_url=chat_url(spec.judge),
        extra_headers=headers(spec.judge),
        feedback_value_type=Literal["yes", "no"],
        inference_params={"max_tokens": spec.judge.max_tokens, "temperature": 0},
        description=f"canaryflow judge: {spec.judge.model} at {spec.judge.endpoint}",
    )


def mlflow_judge(spec: ScorerSpec) -> Any:
    """The MLflow judge for `spec` (one per spec and process)."""
    return _judge(spec.model_dump_json())


def verdict_value(spec: ScorerSpec, value: Any, rationale: str) -> float:
    """1.0 for yes, 0.0 for no; JudgeAnswerError for anything else."""
    if isinstance(value, str) and value.strip().lower() in VERDICTS:
        return 1.0 if value.strip().lower() == "yes" else 0.0
    assert spec.judge is not None
    raise JudgeAnswerError(
        f"judge {spec.label!r} ({spec.judge.model} at {spec.judge.endpoint}) answered "
        f"{value!r} ({rationale[:200]!r}), not yes or no: the endpoint must serve a model that "
        "follows MLflow's judge prompt and its JSON answer format"
    )


def judge(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    """One judgement of `out` on `row`, in process (the live canary, LocalScoring)."""
    from validation.evaluation.scorers import Score

    try:
        feedback = mlflow_judge(spec)(inputs={"messages": list(row.messages)}, outputs=out,
                                      expectations=dict(row.expectations))  # fmt: skip
    except Exception as exc:  # MLflow raises several types on a broken answer
        raise JudgeAnswerError(
            f"judge {spec.label!r} failed on row {row.row_id or '?'}: {type(exc).__name__}: "
            f"{str(exc)[:300]}"
        ) from exc
    if feedback.error:
        raise JudgeAnswerError(f"judge {spec.label!r} on row {row.row_id}: {feedback.error}")
    why = str(feedback.rationale or "")
    return Score(verdict_value(spec, feedback.value, why), why)


def probe(spec: ScorerSpec, row: EvalRow) -> None:
    """Validate-time check of a judge: the endpoint answers this spec's model with this key
    (one short request), then one real judgement of `row`'s expected answer is yes or no."""
    assert spec.judge is not None
    j = spec.judge
    body = {"model": j.model, "max_tokens": 1,
            "messages": [{"role": "user", "content": "ping"}]}  # fmt: skip
    try:
        resp = httpx.post(chat_url(j), json=body, headers=headers(j), timeout=j.timeout_s)
    except httpx.HTTPError as exc:
        raise JudgeUnreachableError(
            f"judge {spec.label!r}: {chat_url(j)} did not answer ({type(exc).__name__}: {exc}); "
            "start the judge's server or fix judge.endpoint"
        ) from exc
    if resp.status_code in (401, 403):
        raise JudgeUnreachableError(
            f"judge {spec.label!r}: {j.endpoint} refused the key (HTTP {resp.status_code}); "
            f"set {j.api_key_env or 'judge.api_key_env'} to the endpoint's key"
        )
    if resp.status_code != 200:
        raise JudgeUnreachableError(
            f"judge {spec.label!r}: {chat_url(j)} answered HTTP {resp.status_code} for model "
            f"{j.model!r}: {resp.text[:300]}; check judge.model and judge.endpoint"
        )
    sample = row.expectations.get("expected_response")
    out = sample if isinstance(sample, str) else json.dumps(sample)
    judge(spec, row, out)
