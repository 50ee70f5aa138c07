from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from infra.demo_model.train import TrainConfig
from validation.golden import TaskSpec, exact_match, extract_answer, sample, split, training_stream


def test_heldout_is_distinct_and_never_trained_on() -> None:
    spec = TaskSpec()
    prompts, heldout = split(spec, 300, seed=0)
    assert len(heldout) == len(prompts) == 300
    stream = list(itertools.islice(training_stream(spec, prompts, seed=1), 5000))
    assert not {ex.prompt for ex in stream} & prompts


def test_sampling_is_seeded() -> None:
    assert sample(TaskSpec(), 50, seed=3) == sample(TaskSpec(), 50, seed=3)
    assert sample(TaskSpec(), 50, seed=3) != sample(TaskSpec(), 50, seed=4)


def test_distribution_is_a_parameter() -> None:
    drifted = sample(TaskSpec(min_operand=100, max_operand=999, operators="-*"), 200, seed=0)
    for ex in drifted:
        a, b = (int(x) for x in ex.prompt.replace("*", "-").split("-", 1))
        assert 100 <= a <= 999
        assert 100 <= b <= 999
        assert ex.answer == str(eval(ex.prompt))  # noqa: S307 - our own arithmetic strings


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_operand": 50, "max_operand": 10}, "swap them"),
        ({"operators": "+/"}, "unknown operators"),
    ],
)
def test_bad_task_spec_says_what_to_do(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TaskSpec.model_validate(kwargs)


def test_too_small_task_space_for_heldout() -> None:
    with pytest.raises(ValueError, match="too small"):
        split(TaskSpec(min_operand=0, max_operand=2), 100, seed=0)


def test_head_dim_must_be_64() -> None:
    with pytest.raises(ValidationError, match="num_heads=4"):
        TrainConfig(hidden_size=256, num_heads=2)


@pytest.mark.parametrize(
    ("completion", "answer", "ok"),
    [
        ("47", "47", True),
        (" 47 ", "47", True),
        ("47 and more", "47", False),
        ("-3", "-3", True),
        ("", "1", False),
        ("4", "47", False),
    ],
)
def test_exact_match(completion: str, answer: str, ok: bool) -> None:
    assert exact_match(completion, answer) is ok


def test_extract_answer() -> None:
    assert extract_answer("x = -12") == "-12"
    assert extract_answer("none") is None
