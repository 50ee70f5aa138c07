"""A window of "user" traffic through the router: what the demo and tests use as live traffic.

    sent = send_traffic(router_url, api_key, "tiny-chat",
                        sample(TaskSpec(min_operand=100, max_operand=199), 200, seed=1))
    sent.ok, sent.failed, sent.correct

Unlike the canary load (infra/load/runner.py, Locust), these requests carry ordinary request
ids (`user-…`), so the servers' capture counts them as live traffic for drift checks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from infra.load.wire import chat_body, parse_completion
from validation.golden import Example, exact_match


@dataclass(frozen=True)
class Sent:
    ok: int
    failed: int
    correct: int


def send_traffic(
    router_url: str,
    api_key: str,
    model: str,
    examples: list[Example],
    *,
    concurrency: int = 4,
    max_tokens: int = 8,
    timeout_s: float = 60.0,
    correct: Callable[[str, str], bool] = exact_match,
) -> Sent:
    """One chat completion per example (`concurrency` at a time); counts what came back and
    how much of it `correct(answer, example.answer)` accepts (default: the demo's exact
    match; a JSON model passes its own rule)."""
    headers = {"Authorization": f"Bearer {api_key}"}

    def one(client: httpx.Client, ex: Example) -> tuple[bool, bool]:
        body = chat_body(model, [{"role": "user", "content": ex.prompt}], max_tokens, False)
        rid = {"X-Request-ID": f"user-{uuid.uuid4().hex}"}
        try:
            resp = client.post("/v1/chat/completions", json=body, headers={**headers, **rid})
        except httpx.HTTPError:
            return False, False
        if resp.status_code != 200:
            return False, False
        text, error = parse_completion(resp.content)
        return error is None, error is None and correct(text, ex.answer)

    with (
        httpx.Client(base_url=router_url, timeout=timeout_s) as client,
        ThreadPoolExecutor(concurrency) as pool,
    ):
        results = list(pool.map(lambda ex: one(client, ex), examples))
    ok = sum(r[0] for r in results)
    return Sent(ok=ok, failed=len(results) - ok, correct=sum(r[1] for r in results))
