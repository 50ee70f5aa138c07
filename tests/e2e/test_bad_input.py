"""Malformed and hostile requests through the router to a real vLLM stable: 4xx, never 5xx.

One Docker target for the module: HAProxy on loopback in front of one container of the
serving image (trained demo model, max_model_len 64). Three tests, each sending only with
the right key through the router URL:

1. a table of hand-written hostile requests: each gets a 4xx whose JSON body says what is
   wrong (naming the field where vLLM does);
2. every top-level field of the served schema (/openapi.json) set to each wrong type;
3. a bounded, seeded Hypothesis run of bodies generated from that schema
   (tests/fixtures/openapi_fuzz.py): never a 5xx, never a dropped connection.

After each, a normal completion must still succeed and the container must not have
restarted. Each test prints what it sent and the statuses it got (`-s` to read them).

    PYTHONPATH=. DOCKER_HOST=unix:///run/canaryflow-docker.sock \\
        .venv/bin/python -m pytest tests/e2e/test_bad_input.py -m e2e -q -s
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from infra.image.build import BuiltImage
from infra.targets.docker import DockerTarget
from infra.targets.docker_containers import TARGET_LABEL
from tests.fixtures.docker_target import make_config, running_target, variant
from tests.fixtures.fault_report import summarize
from tests.fixtures.openapi_fuzz import Body, Tally, field_sweep, request_bodies

pytestmark = pytest.mark.e2e
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
MODEL = "tiny-chat"
FUZZ_EXAMPLES = int(os.environ.get("CANARYFLOW_FUZZ_EXAMPLES", "1000"))
FUZZ_BUDGET_S = float(os.environ.get("CANARYFLOW_FUZZ_BUDGET_S", "60"))


@dataclass
class Router:
    url: str
    client: httpx.Client
    target: DockerTarget

    def post(self, path: str, body: bytes, **headers: str) -> httpx.Response:
        return self.client.post(self.url + path, content=body, headers=headers)

    def container_state(self) -> list[tuple[str, str, int]]:
        """(id, StartedAt, RestartCount) of the target's containers: a crash changes it."""
        found = self.target.client.containers.list(
            all=True, filters={"label": f"{TARGET_LABEL}={self.target.config.name}"}
        )
        return sorted(
            (c.id, c.attrs["State"]["StartedAt"], int(c.attrs.get("RestartCount", 0)))
            for c in found
        )


@pytest.fixture(scope="module")
def router(
    docker_client: docker.DockerClient,
    serving_image: BuiltImage,
    e2e_labels: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Router]:
    image = os.environ.get("CANARYFLOW_SERVING_IMAGE") or serving_image.tag
    config = make_config(
        tmp_path_factory.mktemp("bad-input") / "state",
        ready_timeout_s=600,
        labels={"io.canaryflow.test": "1", **e2e_labels},
    )
    with running_target(config, client=docker_client) as target:
        target.deploy(variant(image, "1", "r1"))
        key = Path(target.api_key_file).read_text().strip()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        with httpx.Client(headers=headers, timeout=60) as client:
            r = Router(target.router_url, client, target)
            assert_healthy(r)
            yield r


def chat(**fields: Any) -> bytes:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "1+1"}], "max_tokens": 4}
    return json.dumps({**body, **fields}).encode()


def completion(**fields: Any) -> bytes:
    return json.dumps({"model": MODEL, "prompt": "1+1", "max_tokens": 4, **fields}).encode()


def user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


def assert_healthy(router: Router) -> None:
    """A normal completion succeeds (so the server survived what came before)."""
    resp = router.post(CHAT, chat(temperature=0))
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"]


# -- 1. hand-written hostile requests --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    body: bytes | None
    path: str = CHAT
    method: str = "POST"
    says: str = ""  # in the error message, case-insensitive ("" = any message)
    status: int | None = None  # exact status where it is meaningful, else any 4xx
    headers: tuple[tuple[str, str], ...] = ()
    json_error: bool = True  # the body is JSON naming the error


LONG = "1+1 " * 2000  # ~8000 characters; the model's context is 64 tokens
NUL = b'{"model": "tiny-chat", "messages": [{"role": "user", "content": "a\x00b"}]}'
BAD_UTF8 = NUL.replace(b"a\x00b", b"\xff\xfe\xc3")
IMAGE = {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x.png"}}
# fmt: off
CASES = [
    Case("bad JSON", b"{not json", says="JSON"),
    Case("truncated JSON", chat()[:-7], says="JSON"),
    Case("empty body", b"", says="body"),
    Case("JSON array", b"[1, 2]", says="object"),
    Case("JSON number", b"42", says="object"),
    Case("JSON string", b'"hello"', says="object"),
    Case("JSON null", b"null"),
    Case("invalid UTF-8", BAD_UTF8, says="UTF-8"),
    Case("NUL byte raw", NUL, says="JSON"),
    Case("deep nesting", b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         says="nested"),
    Case("integer of 5000 digits", b'{"max_tokens": 1' + b"0" * 5000 + b"}", says="integer"),
    Case("messages: string", chat(messages="1+1"), says="messages"),
    Case("messages: object", chat(messages={"role": "user"}), says="messages"),
    Case("messages: null", chat(messages=None)),
    Case("messages: numbers", chat(messages=[1, 2]), says="messages"),
    Case("messages: empty", chat(messages=[]), says="empty"),
    Case("unknown role", chat(messages=[{"role": "wizard", "content": "hi"}]), says="role"),
    Case("content: number", chat(messages=user(5)), says="content"),
    Case("content: unknown part", chat(messages=user([{"type": "bogus"}])), says="type"),
    Case("content: image part", chat(messages=user([IMAGE])), says="multimodal"),
    Case("max_tokens: string", chat(max_tokens="ten"), says="max_tokens"),
    Case("max_tokens: -1", chat(max_tokens=-1), says="max_tokens"),
    Case("max_tokens: 0", chat(max_tokens=0), says="max_tokens"),
    Case("max_tokens: 10^9", chat(max_tokens=10**9), says="max_tokens"),
    Case("max_tokens: 2^64", chat(max_tokens=2**64), says="max_tokens"),
    Case("max_tokens: 3.5", chat(max_tokens=3.5), says="max_tokens"),
    Case("max_completion_tokens: -5", chat(max_completion_tokens=-5), says="max_tokens"),
    Case("temperature: string", chat(temperature="hot"), says="temperature"),
    Case("temperature: -1", chat(temperature=-1), says="temperature"),
    Case("temperature: NaN", chat()[:-1] + b', "temperature": NaN}', says="temperature"),
    Case("temperature: Infinity", chat()[:-1] + b', "temperature": Infinity}',
         says="temperature"),
    Case("top_p: 5", chat(top_p=5), says="top_p"),
    Case("top_k: 10^30", chat(top_k=10**30), says="top_k"),
    Case("n: string", chat(n="two"), says="n"),
    Case("n: 0", chat(n=0), says="n"),
    Case("n: -1", chat(n=-1), says="n"),
    Case("n: 100000", chat(n=100_000), says="n"),
    Case("n x prompts: 1024 x 17", completion(prompt=["1+1"] * 1024, n=17), COMPLETIONS,
         says="sequences"),
    Case("stream: object", chat(stream={"on": True}), says="stream"),
    Case("stream_options without stream", chat(stream_options={"include_usage": True}),
         says="stream"),
    Case("stream_interval: 10^30", completion(stream_interval=10**30), COMPLETIONS,
         says="stream_interval"),
    Case("model: number", chat(model=7), says="model"),
    Case("model: unknown", chat(model="gpt-17"), says="does not exist", status=404),
    Case("stop: number", chat(stop=5), says="stop"),
    Case("stop: numbers", chat(stop=[1, 2]), says="stop"),
    Case("logprobs: string", chat(logprobs="many"), says="logprobs"),
    Case("top_logprobs: 10^6", chat(logprobs=True, top_logprobs=10**6), says="logprobs"),
    Case("seed: 2^70", chat(seed=2**70), says="seed"),
    Case("logit_bias: bad key", chat(logit_bias={"abc": 5}), says="logit_bias"),
    Case("response_format: unknown", chat(response_format={"type": "nope"}),
         says="response_format"),
    Case("structured_outputs: list", chat(structured_outputs=["x"]),
         says="structured_outputs"),
    Case("structured_outputs: bad regex", chat(structured_outputs={"regex": "(("}),
         says="regex"),
    Case("length_penalty: -1e16 (beam search)",
         completion(use_beam_search=True, length_penalty=-1e16), COMPLETIONS,
         says="length_penalty"),
    Case("bad_words with structured choice",
         completion(bad_words=["yes"], structured_outputs={"choice": ["yes", "no"]}),
         COMPLETIONS, says="bad_words"),
    Case("bad_words with JSON response_format",
         chat(bad_words=["{"], response_format={"type": "json_object"}), says="bad_words"),
    Case("tools: no function", chat(tools=[{"type": "function"}]), says="function"),
    Case("chat_template from request", chat(chat_template="{{ raise_exception('x') }}"),
         says="chat template"),
    Case("long prompt (chat)", chat(messages=user(LONG)), says="context length"),
    Case("long prompt (chat, stream)", chat(messages=user(LONG), stream=True),
         says="context length"),
    Case("long prompt (completions)", completion(prompt=LONG), COMPLETIONS,
         says="context length"),
    Case("prompt: number", completion(prompt=5), COMPLETIONS, says="prompt"),
    Case("prompt: empty", completion(prompt=""), COMPLETIONS, says="prompt"),
    Case("prompt: token id out of vocab", completion(prompt=[2**40]), COMPLETIONS,
         says="vocab"),
    Case("prompt: negative token id", completion(prompt=[-1]), COMPLETIONS, says="prompt"),
    Case("completions max_tokens: -1 (stream)", completion(max_tokens=-1, stream=True),
         COMPLETIONS, says="max_tokens"),
    Case("completions n: 100000 (stream)", completion(n=100_000, stream=True), COMPLETIONS,
         says="n"),
    Case("chat unknown model (stream)", chat(model="nope", stream=True), says="does not exist",
         status=404),
    Case("text/plain body", chat(), headers=(("Content-Type", "text/plain"),),
         says="application/json"),
    Case("form body", b"model=tiny-chat", says="application/json",
         headers=(("Content-Type", "application/x-www-form-urlencoded"),)),
    Case("GET on chat", None, method="GET", status=405),
    Case("GET on completions", None, COMPLETIONS, method="GET", status=405),
    Case("PUT on chat", chat(), method="PUT", status=405),
    Case("unknown path", None, "/v1/nope", method="GET", status=404),
    Case("unknown POST path", chat(), "/v2/chat/completions", status=404),
    Case("operator route", b'{"new_data_parallel_size": 2}', "/scale_elastic_ep", status=404),
    Case("operator route, array", b"[]", "/scale_elastic_ep", status=404),
    Case("5 MiB body", chat(messages=user("a" * (5 << 20))), json_error=False),
]
# fmt: on


def error_message(resp: httpx.Response) -> str:
    """The message of a JSON error body: vLLM's and ours `error.message`, FastAPI's `detail`."""
    body = resp.json()
    assert isinstance(body, dict), body
    err = body.get("error", body.get("detail"))
    message = err.get("message") if isinstance(err, dict) else err
    assert isinstance(message, str), body
    assert message.strip(), body
    return message


def test_hostile_requests_get_4xx_that_say_what_is_wrong(router: Router) -> None:
    before = router.container_state()
    seen: list[tuple[str, int, str]] = []
    wrong: list[str] = []
    for i, case in enumerate(CASES):
        try:
            resp = router.client.request(
                case.method, router.url + case.path, content=case.body, headers=dict(case.headers)
            )
        except httpx.TransportError as exc:
            wrong.append(f"{case.name}: {type(exc).__name__} {exc}")
            continue
        try:
            message = error_message(resp) if case.json_error else resp.text
        except (ValueError, AssertionError):
            message = f"(not a JSON error) {resp.text[:200]!r}"
        seen.append((case.name, resp.status_code, message.replace("\n", " ")[:110]))
        if not 400 <= resp.status_code < 500 or (case.status and resp.status_code != case.status):
            wrong.append(f"{case.name}: {resp.status_code} {message[:300]}")
        elif case.json_error and message.startswith("(not a JSON error)"):
            wrong.append(f"{case.name}: {message}")
        elif case.says and case.says.lower() not in message.lower():
            wrong.append(f"{case.name}: message lacks {case.says!r}: {message[:300]}")
        if i % 10 == 9:
            assert_healthy(router)
    summarize(
        f"bad input: {len(seen)} hostile requests; statuses "
        f"{dict(Counter(s for _, s, _ in seen))}; wrong: {len(wrong)}"
    )
    for name, status, message in seen:
        print(f"  {status} {name:38s} {message}")
    assert not wrong, "\n".join(wrong)
    assert_healthy(router)
    assert router.container_state() == before, "a serving container restarted"


def test_prompt_logprobs_are_served_and_do_not_kill_the_engine(router: Router) -> None:
    """Found by the field sweep: vLLM compiles a logprobs helper with inductor on the first
    prompt-logprobs request; without a C++ compiler that killed the engine (500 for all)."""
    before = router.container_state()
    for body, path in ((chat(echo=True), CHAT), (completion(echo=True, logprobs=1), COMPLETIONS),
                       (completion(prompt_logprobs=1), COMPLETIONS)):  # fmt: skip
        resp = router.post(path, body)
        assert resp.status_code == 200, resp.text
    assert_healthy(router)
    assert router.container_state() == before, "a serving container restarted"


# -- 2./3. bodies from the served schema ------------------------------------------------------


BASES = {
    CHAT: {"model": MODEL, "messages": user("1+1"), "max_tokens": 4},
    COMPLETIONS: {"model": MODEL, "prompt": "1+1", "max_tokens": 4},
}


@pytest.fixture(scope="module")
def served_schema(router: Router) -> dict[str, Any]:
    """/openapi.json through the router, else straight from a slot's loopback port."""
    urls = [router.url] + [f"http://127.0.0.1:{p}" for p in router.target.config.slot_ports]
    for url in urls:
        try:
            resp = router.client.get(f"{url}/openapi.json", timeout=10)
        except httpx.TransportError:
            continue
        if resp.status_code == 200:
            schema: dict[str, Any] = resp.json()
            assert {CHAT, COMPLETIONS} <= set(schema["paths"]), sorted(schema["paths"])
            return schema
    pytest.fail(f"no /openapi.json at {urls}")


def send(router: Router, tally: Tally, path: str, body: Body) -> None:
    try:
        resp = router.post(path, body.data)
        tally.add(path, resp.status_code, body, resp.text[:300])
    except httpx.TransportError as exc:  # a reset or a dropped connection
        tally.add(path, type(exc).__name__, body, str(exc))


def test_every_schema_field_with_each_wrong_type_gets_4xx_or_2xx(
    router: Router, served_schema: dict[str, Any]
) -> None:
    before, tally, start = router.container_state(), Tally(), time.monotonic()
    for path, base in BASES.items():
        for body in field_sweep(served_schema, path, base):
            send(router, tally, path, body)
    summarize(f"bad input: field sweep {tally.summary()} in {time.monotonic() - start:.1f} s")
    assert not tally.failures, "\n".join(tally.failures[:20])
    assert_healthy(router)
    assert router.container_state() == before, "a serving container restarted"


def test_fuzzed_bodies_from_the_served_schema_never_get_5xx(
    router: Router, served_schema: dict[str, Any]
) -> None:
    strategies = {p: request_bodies(served_schema, p, base) for p, base in BASES.items()}
    cases = st.sampled_from(sorted(strategies)).flatmap(
        lambda p: st.tuples(st.just(p), strategies[p])
    )
    before, tally, start = router.container_state(), Tally(), time.monotonic()

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,  # the same bodies on every run
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every failure is listed
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def fuzz(case: tuple[str, Body]) -> None:
        if time.monotonic() - start > FUZZ_BUDGET_S:
            tally.skipped += 1
            return
        send(router, tally, *case)

    fuzz()
    summarize(f"bad input: schema fuzz {tally.summary()} in {time.monotonic() - start:.1f} s")
    assert not tally.failures, "\n".join(tally.failures[:20])
    assert tally.sent >= min(FUZZ_EXAMPLES, 50), tally.summary()
    assert_healthy(router)
    assert router.container_state() == before, "a serving container restarted"
