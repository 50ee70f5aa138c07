"""The checks for values vLLM 0.32 answers with a 500: each one found by the e2e fuzz run."""

from __future__ import annotations

from typing import Any

import pytest

from serving.request_checks import (
    CHAT,
    COMPLETIONS,
    Rejection,
    check_request,
    json_type,
    prompt_count,
)

LIMIT = 16384


def rejected(path: str, **fields: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        check_request(path, {"model": "m", "prompt": "1+1", **fields}, LIMIT)
    assert info.value.status == 400
    return info.value


@pytest.mark.parametrize(
    ("fields", "param", "says"),
    [
        ({"top_k": 10**30}, "top_k", "top_k is 1000000000000000000000000000000: integers"),
        ({"stream_interval": 2**64}, "stream_interval", "must fit in 64 bits"),
        ({"seed": -(2**63) - 1}, "seed", "must fit in 64 bits"),
        ({"max_tokens": 10**4000}, "max_tokens", "an integer of 4001 digits"),
        ({"repetition_detection": {"max_pattern_size": 10**30}},
         "repetition_detection.max_pattern_size", "must fit in 64 bits"),
        ({"prompt": [1, 2, 2**64]}, "prompt.2", "must fit in 64 bits"),
        ({"structured_outputs": []}, "structured_outputs", "object or null, got an array"),
        ({"structured_outputs": "regex"}, "structured_outputs", "got a string"),
        ({"structured_outputs": 0}, "structured_outputs", "got a number"),
        ({"use_beam_search": True, "length_penalty": -1e16}, "length_penalty",
         "with beam search it must be between -50 and 50"),
        ({"use_beam_search": True, "length_penalty": 1000}, "length_penalty", "-50 and 50"),
        ({"use_beam_search": True, "max_tokens": 0}, "max_tokens", "at least 1, got 0"),
        ({"use_beam_search": True, "max_tokens": -1}, "max_tokens", "at least 1, got -1"),
        ({"bad_words": ["yes"], "structured_outputs": {"choice": ["yes", "no"]}}, "bad_words",
         "bad_words cannot be combined with structured_outputs"),
        ({"bad_words": ["{"], "response_format": {"type": "json_object"}}, "bad_words",
         "combined with response_format 'json_object'"),
        ({"n": 16385}, "n", "asks for 16385 sequences; at most 16384"),
        ({"prompt": ["a"] * 1024, "n": 17}, "n", "n=17 x 1024 prompt(s)"),
        ({"prompt": [[1, 2]] * 100, "n": 200}, "n", "20000 sequences"),
    ],
)  # fmt: skip
def test_values_vllm_answers_with_500_are_refused(
    fields: dict[str, Any], param: str, says: str
) -> None:
    rejection = rejected(COMPLETIONS, **fields)
    assert rejection.param == param
    assert says in rejection.message


def test_chat_beam_search_checks_max_completion_tokens_too() -> None:
    body = {"messages": [], "use_beam_search": True, "max_completion_tokens": -1}
    with pytest.raises(Rejection, match="max_completion_tokens must be at least 1"):
        check_request(CHAT, body, LIMIT)


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        (COMPLETIONS, {"seed": 2**63 - 1, "priority": -(2**63)}),
        (COMPLETIONS, {"structured_outputs": {"regex": "[0-9]+"}}),
        (COMPLETIONS, {"structured_outputs": None}),
        (COMPLETIONS, {"use_beam_search": True, "length_penalty": -50, "max_tokens": 1}),
        (COMPLETIONS, {"length_penalty": -1e16, "max_tokens": -1}),  # vLLM's own checks
        (COMPLETIONS, {"use_beam_search": True, "max_tokens": "ten"}),  # vLLM names types
        (COMPLETIONS, {"max_completion_tokens": -1, "use_beam_search": True}),  # not a field
        (COMPLETIONS, {"n": 16384}),
        (COMPLETIONS, {"bad_words": ["x"], "response_format": {"type": "text"}}),
        (COMPLETIONS, {"bad_words": [], "structured_outputs": {"regex": "1+"}}),
        (COMPLETIONS, {"bad_words": ["x"], "structured_outputs": None}),
        (COMPLETIONS, {"prompt": ["a"] * 1024, "n": 16}),
        (COMPLETIONS, {"prompt": [1, 2, 3] * 100, "n": 200}),  # one prompt as token ids
        (COMPLETIONS, {"n": "lots"}),
        (COMPLETIONS, {"n": -5}),
        (CHAT, {"prompt": ["a"] * 1024, "n": 17}),  # chat has no prompt list
        ("/tokenize", {"structured_outputs": [], "n": 10**6}),  # field checks: generation only
    ],
)
def test_values_vllm_handles_pass(path: str, fields: dict[str, Any]) -> None:
    check_request(path, {"model": "m", "prompt": "1+1", **fields}, LIMIT)


def test_the_integer_check_covers_every_route() -> None:
    with pytest.raises(Rejection, match=r"tokens\.0 is"):
        check_request("/detokenize", {"tokens": [2**64]}, LIMIT)


def test_prompt_count() -> None:
    prompts: tuple[Any, ...] = ("a", [], [1, 2], ["a", "b"], [[1], [2], [3]], None)
    assert [prompt_count(p) for p in prompts] == [1, 1, 1, 2, 3, 1]


def test_json_type() -> None:
    values: tuple[Any, ...] = ({}, [], "", True, 1, 1.5, None)
    assert [json_type(v) for v in values] == [
        "an object", "an array", "a string", "a boolean", "a number", "a number", "null",
    ]  # fmt: skip
