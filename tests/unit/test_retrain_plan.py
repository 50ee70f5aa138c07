"""The demo trainer's plan: what recent traffic asks for, widened over the champion's task
(its entry point runs in tests/integration/test_retrain_flow.py)."""

from __future__ import annotations

import pytest

from infra.demo_model.retrain import (
    TRAIN_CONFIG_TAG,
    champion_config,
    observed_task,
    plan,
    widened,
)
from infra.demo_model.train import TrainConfig
from infra.training.spec import RetrainSpec, release_parameters
from validation.golden import TaskSpec


def test_the_observed_task_spans_the_parseable_prompts() -> None:
    seen, n = observed_task(["12+7", " 150 + 3 ", "hello", None, "9*140", "1+2+3"])
    assert n == 3
    assert seen == TaskSpec(min_operand=3, max_operand=150, operators="*+")
    assert observed_task(["no numbers here"]) == (None, 0)


def test_widening_keeps_the_reference_and_adds_what_was_seen() -> None:
    base = TaskSpec()
    assert widened(base, None) == base
    both = widened(base, TaskSpec(min_operand=100, max_operand=199, operators="-"))
    assert both == TaskSpec(min_operand=0, max_operand=199, operators="+-")


def test_steps_grow_with_the_problem_count_and_are_capped() -> None:
    base = TrainConfig(steps=1000)
    seen = TaskSpec(min_operand=100, max_operand=199)
    doubled = plan(base, seen, 50)
    assert doubled.task.max_operand == 199
    assert doubled.steps == 2000  # 4x the problems -> sqrt -> 2x the steps
    assert plan(base, seen, 50, max_steps=1500).steps == 1500
    assert plan(base, seen, 50, steps=10).steps == 10
    too_few = plan(base, seen, 5, min_prompts=20)
    assert too_few.task == base.task  # five prompts are not a distribution
    assert too_few.steps == 1000


def test_the_champion_config_comes_from_its_tag() -> None:
    tagged = TrainConfig(steps=1234, task=TaskSpec(max_operand=50))
    assert champion_config({TRAIN_CONFIG_TAG: tagged.model_dump_json()}) == tagged
    assert champion_config(None) == TrainConfig()
    assert champion_config({"other": "x"}) == TrainConfig()


COMMAND = {"kind": "command", "command": ["{python}", "-m", "infra.demo_model.trainer",
                                          "{request}"]}  # fmt: skip


def test_the_release_gets_the_new_version_and_the_extra_spec_fields() -> None:
    spec = RetrainSpec.model_validate(
        {
            "model_name": "team-model",
            "trainer": COMMAND,
            "release_spec": {"canary": {"steps": [50]}, "model": "ignored"},
        }
    )
    assert release_parameters(spec, "team-model", "7") == {
        "spec": {"canary": {"steps": [50]}, "model": "models:/team-model/7"}
    }


def test_a_bad_spec_is_refused_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="min_requests"):
        RetrainSpec.model_validate(
            {"model_name": "team-model", "trainer": COMMAND, "min_requests": 0}
        )
    with pytest.raises(ValueError, match="trainer"):
        RetrainSpec.model_validate({"model_name": "team-model"})
    with pytest.raises(ValueError, match="model_name"):
        RetrainSpec.model_validate({"trainer": COMMAND})
