"""The demo task: integer arithmetic with exact answers, so quality is measurable.

The input distribution is a parameter (`TaskSpec`): shift the operand range or the operators
and you get drifted traffic on purpose. Everything is seeded and reproducible.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


class TaskSpec(BaseModel):
    """Which arithmetic problems are asked (the input distribution)."""

    min_operand: int = Field(0, ge=0, description="Smallest operand (inclusive).")
    max_operand: int = Field(99, ge=0, le=9999, description="Largest operand (inclusive).")
    operators: str = Field("+", min_length=1, description="Operators to draw from: any of '+-*'.")

    @model_validator(mode="after")
    def _check(self) -> TaskSpec:
        if self.min_operand > self.max_operand:
            raise ValueError(
                f"min_operand {self.min_operand} > max_operand {self.max_operand}: swap them"
            )
        bad = set(self.operators) - set(_OPS)
        if bad:
            raise ValueError(f"unknown operators {sorted(bad)}: use only '+', '-', '*'")
        return self


@dataclass(frozen=True)
class Example:
    """One prompt with its exact answer."""

    prompt: str
    answer: str


def solve(a: int, op: str, b: int) -> str:
    """The exact answer to `a op b`."""
    return str(_OPS[op](a, b))


def make_example(a: int, op: str, b: int) -> Example:
    return Example(prompt=f"{a}{op}{b}", answer=solve(a, op, b))


def sample(spec: TaskSpec, n: int, seed: int) -> list[Example]:
    """`n` problems drawn from `spec` with a seeded RNG (repeats allowed)."""
    rng = random.Random(seed)
    ops = list(spec.operators)
    return [
        make_example(
            rng.randint(spec.min_operand, spec.max_operand),
            rng.choice(ops),
            rng.randint(spec.min_operand, spec.max_operand),
        )
        for _ in range(n)
    ]


def split(spec: TaskSpec, n_heldout: int, seed: int) -> tuple[frozenset[str], list[Example]]:
    """A held-out set (distinct prompts never used in training) and the set of its prompts."""
    heldout: dict[str, Example] = {}
    rng_seed = seed
    while len(heldout) < n_heldout:
        for ex in sample(spec, n_heldout, rng_seed):
            if len(heldout) < n_heldout:
                heldout.setdefault(ex.prompt, ex)
        rng_seed += 1
        if rng_seed - seed > 1000:
            raise ValueError(f"task space of {spec} is too small for {n_heldout} held-out prompts")
    return frozenset(heldout), list(heldout.values())


def training_stream(spec: TaskSpec, exclude: frozenset[str], seed: int) -> Iterator[Example]:
    """An endless seeded stream of training problems that never shows a held-out prompt."""
    rng = random.Random(seed)
    ops = list(spec.operators)
    while True:
        ex = make_example(
            rng.randint(spec.min_operand, spec.max_operand),
            rng.choice(ops),
            rng.randint(spec.min_operand, spec.max_operand),
        )
        if ex.prompt not in exclude:
            yield ex


_ANSWER = re.compile(r"-?\d+")


def extract_answer(completion: str) -> str | None:
    """The first integer in a completion, or None when there is none."""
    m = _ANSWER.search(completion)
    return m.group(0) if m else None


def exact_match(completion: str, answer: str) -> bool:
    """True when the completion's answer is exactly the expected integer."""
    return extract_answer(completion.strip()) == answer and completion.strip() == answer


def write_jsonl(examples: Iterable[Example], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex)) + "\n")
    return path


def read_jsonl(path: Path) -> list[Example]:
    with path.open(encoding="utf-8") as f:
        return [Example(**json.loads(line)) for line in f if line.strip()]
