"""Checks on a parsed request body for what vLLM 0.32 answers with a 500 (or serves at a cost).

Each was found by fuzzing the served schema (tests/e2e/test_bad_input.py); each raises
`Rejection(400, message, param)`, which `RequestGuard` turns into an error response:

- an integer outside signed 64 bits anywhere in the body (vLLM's engine encoder overflows
  past 2**64: `top_k`, `stream_interval`, `repetition_detection.max_pattern_size`, ...);
- `structured_outputs` that is not an object (a validator calls `.get` on it);
- with `use_beam_search`: `max_tokens` (or chat's `max_completion_tokens`) below 1, which
  beam search skips checking and ends in an IndexError on an empty prompt, and a
  `length_penalty` outside +-50 (scores divide by `length ** length_penalty`: 0.0);
- `bad_words` together with structured output (`structured_outputs`, or a `response_format`
  other than text): vLLM fails every such request (500), even when an allowed option remains;
- `n` times the number of prompts over a limit (vLLM caps each, 16384 and 1024, not the
  product: a request for 16 million sequences is hours of work and gigabytes).

Only generation routes get the field checks; the integer check applies to every JSON body.
Wrong types are left to vLLM, which names the field itself. Re-run the fuzz after a vLLM
upgrade: a fixed bug makes its check redundant, never wrong.
"""

from __future__ import annotations

from typing import Any, TypeGuard

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
GENERATION_PATHS = frozenset({CHAT, COMPLETIONS})
# Fields vLLM's "before" validators call .get() on without checking they are objects.
OBJECT_FIELDS = ("structured_outputs",)
# Within +-50, length ** penalty is neither 0.0 nor an overflow up to 10**6 tokens.
MAX_ABS_LENGTH_PENALTY = 50.0


class Rejection(Exception):
    """A request the guard answers itself: status, message and the offending parameter."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def check_request(path: str, body: dict[str, Any], max_sequences: int) -> None:
    """Raise Rejection for a body vLLM would answer with a 500 (or serve at great cost)."""
    check_integers(body)
    if path not in GENERATION_PATHS:
        return
    for name in OBJECT_FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, dict):
            raise Rejection(400, f"{name} must be an object or null, got {json_type(value)}", name)
    if body.get("use_beam_search") is True:
        check_beam_search(path, body)
    check_bad_words(body)
    check_sequences(path, body, max_sequences)


def check_bad_words(body: dict[str, Any]) -> None:
    """Rejection(400) for `bad_words` with structured output, which vLLM 0.32 cannot serve."""
    if not body.get("bad_words"):
        return
    structured = body.get("structured_outputs")
    response_format = body.get("response_format")
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if isinstance(structured, dict) and structured:
        using = "structured_outputs"
    elif kind not in (None, "text"):
        using = f"response_format {kind!r}"
    else:
        return
    raise Rejection(
        400, f"bad_words cannot be combined with {using}: this server fails such requests; "
        "send one of them, or list the allowed outputs (choice/regex) without the bad words",
        "bad_words",
    )  # fmt: skip


def check_integers(body: dict[str, Any]) -> None:
    """Rejection(400) naming the first integer outside signed 64 bits (a dotted path)."""
    stack: list[tuple[str, Any]] = [(str(k), v) for k, v in body.items()]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((f"{where}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}", v) for i, v in enumerate(value))
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise Rejection(
                400, f"{where} is {_short(value)}: integers must fit in 64 bits "
                f"({INT64_MIN}..{INT64_MAX})", where,
            )  # fmt: skip


def check_beam_search(path: str, body: dict[str, Any]) -> None:
    """Rejection(400) for beam-search parameters vLLM does not check."""
    names = ("max_tokens", "max_completion_tokens") if path == CHAT else ("max_tokens",)
    for name in names:
        value = body.get(name)
        if _is_number(value) and value < 1:
            raise Rejection(400, f"{name} must be at least 1, got {value}", name)
    penalty = body.get("length_penalty")
    bound = MAX_ABS_LENGTH_PENALTY
    if _is_number(penalty) and not -bound <= penalty <= bound:  # NaN too
        raise Rejection(
            400, f"length_penalty is {penalty}: with beam search it must be between "
            f"{-bound:g} and {bound:g}", "length_penalty",
        )  # fmt: skip


def check_sequences(path: str, body: dict[str, Any], limit: int) -> None:
    """Rejection(400) when `n` x prompts asks for more than `limit` sequences."""
    n = body.get("n", 1)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        return  # vLLM names the wrong type or value itself
    prompts = prompt_count(body.get("prompt")) if path == COMPLETIONS else 1
    if n * prompts > limit:
        raise Rejection(
            400, f"n={n} x {prompts} prompt(s) asks for {n * prompts} sequences; at most "
            f"{limit} per request: lower n or split the prompts over several requests",
            "n",
        )  # fmt: skip


def prompt_count(prompt: Any) -> int:
    """Prompts in a completions `prompt`: a string or token list is one, a list of them many."""
    if not isinstance(prompt, list) or not prompt:
        return 1
    if all(isinstance(x, int) for x in prompt):
        return 1  # one prompt given as token ids
    return len(prompt)


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    return "null" if value is None else names.get(type(value), "a number")


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: int) -> str:
    digits = len(str(abs(value)))  # bounded: JSON parsing caps integers at 4300 digits
    return str(value) if digits <= 40 else f"an integer of {digits} digits"
