"""Retraining plan: the champion's training config, widened to the traffic it now gets.

    spec = RetrainSpec(model_name="tiny-chat")
    seen = observed_task(window.frame["prompt"])        # TaskSpec of recent live prompts
    config = plan(base_config, seen, spec)              # reference + recent data
    release_parameters(spec, version)                   # the release deployment's parameters

"Reference + recent data": the new task covers the union of what the champion was trained
on (its `canaryflow.train_config` tag) and the operand range and operators of recent live
prompts; the step budget grows with the number of distinct problems (more problems need
more steps to be learned as well), capped by `max_steps`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infra.demo_model.train import TrainConfig
from infra.spec import ReleaseSpec
from validation.golden import TaskSpec

_PROMPT = re.compile(r"^\s*(\d{1,4})\s*([+\-*])\s*(\d{1,4})\s*$")
TRAIN_CONFIG_TAG = "canaryflow.train_config"


class RetrainSpec(BaseModel):
    """How a retrain run finds its data and what it does with the candidate."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    model_name: str = Field(
        "tiny-chat", pattern=r"^[A-Za-z0-9_.-]+$", description="Registered model to retrain."
    )
    window_s: float = Field(
        86_400.0, gt=0, description="Recent live traffic (captured) to learn the new range from."
    )
    min_prompts: int = Field(
        20, ge=1, description="Fewer parseable recent prompts than this: keep the old task."
    )
    steps: int | None = Field(
        None, ge=1, description="Optimizer steps; None: the champion's, scaled to the new task."
    )
    max_steps: int = Field(4000, ge=1, description="Upper bound on the scaled step budget.")
    release: bool = Field(True, description="Start a release of the candidate when trained.")
    release_deployment: str = Field(
        "release/release",
        pattern=r"^[^/\s]+/[^/\s]+$",
        description="Deployment (flow/deployment) that releases it.",
    )
    release_spec: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra ReleaseSpec fields for that release (e.g. canary, load); the model "
        "is set to the new version.",
    )

    @field_validator("release_spec")
    @classmethod
    def _release_spec(cls, v: dict[str, Any]) -> dict[str, Any]:
        # Checked now, not hours later when the trained candidate's release would fail.
        try:
            ReleaseSpec.model_validate({**v, "model": "models:/candidate/1"})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"release_spec is not a valid ReleaseSpec: {problems}") from None
        return v


def observed_task(prompts: Iterable[object]) -> tuple[TaskSpec | None, int]:
    """(the TaskSpec spanning the parseable prompts or None, how many parsed)."""
    low, high, ops, n = math.inf, -math.inf, set(), 0
    for prompt in prompts:
        m = _PROMPT.match(prompt) if isinstance(prompt, str) else None
        if m is None:
            continue
        a, b = int(m[1]), int(m[3])
        low, high, n = min(low, a, b), max(high, a, b), n + 1
        ops.add(m[2])
    if n == 0:
        return None, 0
    spec = TaskSpec(min_operand=int(low), max_operand=int(high), operators="".join(sorted(ops)))
    return spec, n


def widened(base: TaskSpec, seen: TaskSpec | None) -> TaskSpec:
    """The union of both ranges and operator sets (base alone without `seen`)."""
    if seen is None:
        return base
    ops = "".join(dict.fromkeys(base.operators + seen.operators))
    return TaskSpec(min_operand=min(base.min_operand, seen.min_operand),
                    max_operand=max(base.max_operand, seen.max_operand), operators=ops)  # fmt: skip


def problems(task: TaskSpec) -> int:
    width = task.max_operand - task.min_operand + 1
    return width * width * len(task.operators)


def champion_config(tags: Mapping[str, str] | None) -> TrainConfig:
    """The champion's training config from its registry tag; the defaults without one."""
    raw = (tags or {}).get(TRAIN_CONFIG_TAG)
    if not raw:
        return TrainConfig()
    return TrainConfig.model_validate(json.loads(raw))


def plan(base: TrainConfig, seen: TaskSpec | None, n_seen: int, spec: RetrainSpec) -> TrainConfig:
    """The new config: widened task; steps grow with sqrt(problems ratio), capped."""
    task = widened(base.task, seen if n_seen >= spec.min_prompts else None)
    if spec.steps is not None:
        steps = spec.steps
    else:
        ratio = problems(task) / problems(base.task)
        steps = min(spec.max_steps, max(base.steps, math.ceil(base.steps * math.sqrt(ratio))))
    return base.model_copy(update={"task": task, "steps": steps})


def release_parameters(spec: RetrainSpec, name: str, version: str) -> dict[str, Any]:
    """Parameters of the release deployment run for the new version."""
    return {"spec": {**spec.release_spec, "model": f"models:/{name}/{version}"}}
