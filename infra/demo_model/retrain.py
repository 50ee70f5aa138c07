"""The demo trainer's retraining plan: the champion's config, widened to the traffic it gets.

    seen, n = observed_task(train_frame["prompt"])      # TaskSpec of the exported prompts
    config = plan(champion_config(tags), seen, n, min_prompts=20)   # reference + recent data

Used by the demo's trainer entry point (infra/demo_model/trainer.py), which the retrain flow
runs like any other team's trainer.

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

from infra.demo_model.train import TrainConfig
from validation.golden import TaskSpec

_PROMPT = re.compile(r"^\s*(\d{1,4})\s*([+\-*])\s*(\d{1,4})\s*$")
TRAIN_CONFIG_TAG = "canaryflow.train_config"


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


def plan(
    base: TrainConfig,
    seen: TaskSpec | None,
    n_seen: int,
    *,
    min_prompts: int = 20,
    steps: int | None = None,
    max_steps: int = 4000,
) -> TrainConfig:
    """The new config: widened task (when at least `min_prompts` parsed); steps as given, or
    growing with sqrt(problems ratio), capped by `max_steps`."""
    task = widened(base.task, seen if n_seen >= min_prompts else None)
    if steps is None:
        ratio = problems(task) / problems(base.task)
        steps = min(max_steps, max(base.steps, math.ceil(base.steps * math.sqrt(ratio))))
    return base.model_copy(update={"task": task, "steps": steps})
