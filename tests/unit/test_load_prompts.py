"""Prompt sources for the load: golden set, replay of captured traffic, synthetic mix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.load import PromptSourceError
from infra.load.prompts import (
    PromptOrder,
    PromptSource,
    load_prompts,
    read_prompts,
    write_prompts,
)
from serving.capture import Exchange, build_record
from validation.golden import Example, TaskSpec, write_jsonl


def captured(content: Any, **kw: Any) -> dict[str, Any]:
    """A capture record exactly as the serving middleware writes it."""
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}]
    base: dict[str, Any] = {
        "request_id": "r1",
        "variant": "stable",
        "model_version": "1",
        "method": "POST",
        "path": "/v1/chat/completions",
        "started_at": 0.0,
        "status": 200,
        "request_body": json.dumps({"model": "m", "messages": messages}).encode(),
        "response_body": b'{"choices": [{"message": {"content": "5"}}]}',
    }
    return build_record(Exchange(**{**base, **kw}), str)


def write_records(path: Path, records: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def test_golden_prompts_keep_their_answers(tmp_path: Path) -> None:
    golden = write_jsonl([Example("1+2", "3"), Example("4+4", "8")], tmp_path / "g.jsonl")
    prompts = load_prompts(PromptSource(kind="golden", path=golden))
    assert [(p.prompt, p.answer) for p in prompts] == [("1+2", "3"), ("4+4", "8")]
    assert prompts[0].messages == [{"role": "user", "content": "1+2"}]
    assert len(load_prompts(PromptSource(kind="golden", path=golden, size=1))) == 1


def test_replay_uses_captured_messages(tmp_path: Path) -> None:
    records = [
        captured("2+3"),
        captured([{"type": "text", "text": "7+1"}]),  # content parts, joined by the capture
        captured("9+9", request_truncated=True),  # a cut request is not replayed
        captured("1+1", path="/v1/completions", request_body=b'{"prompt": "1+1"}'),
    ]
    path = write_records(tmp_path / "capture.jsonl", records, tail='{"torn": ')
    prompts = load_prompts(PromptSource(kind="replay", path=path))
    assert [p.prompt for p in prompts] == ["2+3", "7+1"]
    assert prompts[0].messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "2+3"},
    ]
    assert all(p.answer is None for p in prompts)


def test_replay_reads_a_directory_of_rotated_files_in_order(tmp_path: Path) -> None:
    write_records(tmp_path / "capture-a.jsonl", [captured("1+1")])
    write_records(tmp_path / "capture-b.jsonl", [captured("2+2"), captured("3+3")])
    source = PromptSource(kind="replay", path=tmp_path, size=2)
    assert [p.prompt for p in load_prompts(source)] == ["1+1", "2+2"]


def test_synthetic_mix_is_seeded_and_exact() -> None:
    source = PromptSource(task=TaskSpec(max_operand=9, operators="*"), size=50, seed=1)
    prompts = load_prompts(source)
    assert prompts == load_prompts(source)
    assert prompts != load_prompts(source.model_copy(update={"seed": 2}))
    for p in prompts:
        a, b = p.prompt.split("*")
        assert p.answer == str(int(a) * int(b))


def test_prompts_file_round_trips(tmp_path: Path) -> None:
    prompts = load_prompts(PromptSource(size=5))
    assert read_prompts(write_prompts(prompts, tmp_path / "p.jsonl")) == prompts


@pytest.mark.parametrize(
    ("kind", "content", "match"),
    [
        ("golden", None, "does not exist"),
        ("golden", "", "no usable prompts"),
        ("golden", '{"question": "1+1"}\n', "not JSONL"),
        ("replay", '{"path": "/v1/models"}\n', "no usable prompts"),
    ],
)
def test_unusable_files_are_named(
    tmp_path: Path, kind: str, content: str | None, match: str
) -> None:
    path = tmp_path / "prompts.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PromptSourceError, match=match):
        load_prompts(PromptSource.model_validate({"kind": kind, "path": path}))


def test_source_validation(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="needs `path`"):
        PromptSource(kind="golden")
    with pytest.raises(ValidationError, match="takes no path"):
        PromptSource(kind="synthetic", path=tmp_path)
    with pytest.raises(ValidationError):
        PromptSource.model_validate({"kind": "twitter"})
    with pytest.raises(ValidationError):
        PromptSource(size=0)


def test_prompt_order_sends_each_prompt_once_per_pass_in_a_fresh_order() -> None:
    order = PromptOrder(500, seed=7)
    passes = [[order.index(t) for t in range(p * 500, (p + 1) * 500)] for p in range(3)]
    assert all(sorted(p) == list(range(500)) for p in passes)
    assert passes[0] != passes[1] != passes[2]
    assert passes[0] != list(range(500))
    again = PromptOrder(500, seed=7)
    assert [again.index(t) for t in range(500)] == passes[0]  # seeded: reproducible


def test_prompt_order_gives_a_round_robin_canary_a_sample_of_the_whole_set() -> None:
    """HAProxy's weighted round robin at 10%: every 10th request. In file order the canary
    saw 50 distinct prompts of 500; in PromptOrder it sees a random sample of them all."""
    order = PromptOrder(500, seed=1)
    canary = [order.index(t) for t in range(3276) if t % 10 == 3]
    assert len(set(t % 500 for t in range(3276) if t % 10 == 3)) == 50  # the old aliasing
    assert len(set(canary)) > 200  # ~240 expected of 328 draws over 6.5 passes
    assert abs(sum(canary) / len(canary) - 249.5) < 25  # not a slice of the set


def test_prompt_order_needs_prompts() -> None:
    with pytest.raises(ValueError, match="at least one prompt"):
        PromptOrder(0, seed=0)
