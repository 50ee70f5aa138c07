"""The demo's arithmetic quality measure (exact integer match on its golden set), the
`Answerer` protocol and the Wilson interval.

Releases are judged by validation/evaluation (the release's own set, any scorers, paired
comparison); `score` here calls the demo task's integer `exact_match`, so only the demo
(infra/demo_model's training report) uses it. `gate` is kept for the demo's numbers.

How the gate decides (and why the confidence intervals do not decide it):

- pass needs candidate accuracy >= threshold AND candidate accuracy >= champion accuracy
  - max_regression (when there is a champion). Both comparisons use point estimates.
- The golden set is fixed and decoding is greedy, so a model's score is deterministic: the
  point estimate is the measurement, and the same model always gets the same verdict. Gating
  on significance instead would wave regressions through on small golden sets (no evidence
  of harm is not evidence of no harm); live-traffic statistics belong to the canary analysis.
- The Wilson 95% intervals of both scores and a one-sided two-proportion z-test p-value
  (H1: candidate worse than champion) are reported in the result so a reader can see how
  much a difference means (it treats the two scores as independent samples, which is
  conservative when both models answered the same prompts). A `notes` entry flags verdicts
  that sit inside that noise.

`raise_if_failed(result)` turns a failed result into QualityGateError with the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from infra.errors import QualityGateError
from validation.golden import Example, exact_match

Z95 = 1.959963984540054  # two-sided 95% normal quantile


class Answerer(Protocol):
    """Anything that answers chat prompts, one completion per prompt, in order.

    `infra.local_generator.TransformersGenerator` (offline) is one; `FakeAnswerer` is the
    test double:

        answerer = FakeAnswerer({"2+2": "4"})
        score(answerer, [Example("2+2", "4")]).accuracy  # 1.0
    """

    def complete(self, prompts: Sequence[str]) -> list[str]: ...


class FakeAnswerer:
    """Answers from a dict (prompt -> completion, `default` otherwise) or a function.

    Records every batch it was asked in `calls`.
    """

    def __init__(
        self, answers: Mapping[str, str] | Callable[[str], str], default: str = ""
    ) -> None:
        self._answer: Callable[[str], str] = (
            answers if callable(answers) else lambda p: answers.get(p, default)
        )
        self.calls: list[list[str]] = []

    def complete(self, prompts: Sequence[str]) -> list[str]:
        self.calls.append(list(prompts))
        return [self._answer(p) for p in prompts]

    @classmethod
    def scoring(cls, examples: Iterable[Example], correct: int) -> FakeAnswerer:
        """Right on the first `correct` distinct prompts of `examples`, wrong on the rest."""
        answers: dict[str, str] = {}
        for ex in examples:
            if ex.prompt not in answers:
                answers[ex.prompt] = ex.answer if len(answers) < correct else f"not {ex.answer}"
        return cls(answers)


class Miss(BaseModel):
    """One golden example the model got wrong (evidence for the report)."""

    model_config = ConfigDict(frozen=True)

    prompt: str
    expected: str
    got: str


class QualityScore(BaseModel):
    """Exact-match accuracy on a golden set with its Wilson 95% interval."""

    model_config = ConfigDict(frozen=True)

    correct: int
    n: int
    accuracy: float
    ci_low: float
    ci_high: float
    misses: tuple[Miss, ...] = ()  # the first few wrong answers

    @classmethod
    def from_counts(cls, correct: int, n: int, misses: Sequence[Miss] = ()) -> QualityScore:
        """A score from counts (e.g. a champion's score read back from the registry)."""
        if n < 1 or not 0 <= correct <= n:
            raise ValueError(f"need n >= 1 and 0 <= correct <= n, got correct={correct} n={n}")
        low, high = wilson(correct, n)
        return cls(correct=correct, n=n, accuracy=correct / n, ci_low=low, ci_high=high,
                   misses=tuple(misses))  # fmt: skip

    def describe(self) -> str:
        return (
            f"{self.accuracy:.3f} ({self.correct}/{self.n}, "
            f"95% CI {self.ci_low:.3f}-{self.ci_high:.3f})"
        )


class GateResult(BaseModel):
    """The gate's verdict with everything it was decided on."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    candidate: QualityScore
    champion: QualityScore | None
    threshold: float
    max_regression: float
    delta: float | None  # candidate - champion accuracy
    p_value: float | None  # one-sided two-proportion z-test, H1: candidate worse than champion
    reasons: tuple[str, ...]  # why it failed; empty when passed
    notes: tuple[str, ...]  # caveats that did not decide the verdict

    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        parts = [f"quality gate {verdict}: candidate {self.candidate.describe()}"]
        if self.champion is not None:
            parts.append(
                f"champion {self.champion.describe()}, delta {self.delta:+.3f}, "
                f"p(candidate worse)={self.p_value:.3g}"
            )
        return "; ".join(parts + list(self.reasons) + list(self.notes))


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sound at 0/n and n/n)."""
    p = correct / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def p_value_worse(candidate: QualityScore, champion: QualityScore) -> float:
    """One-sided pooled two-proportion z-test p-value for candidate < champion."""
    pooled = (candidate.correct + champion.correct) / (candidate.n + champion.n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / candidate.n + 1 / champion.n))
    if se == 0:  # both all-right or both all-wrong: identical, no evidence either way
        return 0.5
    z = (candidate.accuracy - champion.accuracy) / se
    return 0.5 * math.erfc(-z / math.sqrt(2))


def score(answerer: Answerer, examples: Sequence[Example], max_misses: int = 5) -> QualityScore:
    """Exact-match accuracy of `answerer` on `examples` (one batched call)."""
    if not examples:
        raise QualityGateError(
            "the golden set is empty, so quality cannot be measured; ship golden.jsonl with "
            "the model or point the release at a golden set"
        )
    outs = answerer.complete([ex.prompt for ex in examples])
    if len(outs) != len(examples):
        raise ValueError(
            f"answerer returned {len(outs)} completions for {len(examples)} prompts; "
            f"it must return exactly one per prompt, in order"
        )
    misses: list[Miss] = []
    correct = 0
    for ex, out in zip(examples, outs, strict=True):
        if exact_match(out, ex.answer):
            correct += 1
        elif len(misses) < max_misses:
            misses.append(Miss(prompt=ex.prompt, expected=ex.answer, got=out))
    return QualityScore.from_counts(correct, len(examples), misses)


def gate(
    candidate: QualityScore,
    threshold: float,
    champion: QualityScore | None = None,
    max_regression: float = 0.0,
) -> GateResult:
    """Pass iff accuracy >= threshold and (no champion or >= champion - max_regression)."""
    if not 0 <= threshold <= 1 or not 0 <= max_regression <= 1:
        raise ValueError(
            f"threshold and max_regression must lie in [0, 1], got {threshold}, {max_regression}"
        )
    reasons: list[str] = []
    notes: list[str] = []
    if candidate.accuracy < threshold:
        reasons.append(f"accuracy {candidate.accuracy:.3f} is below the threshold {threshold:.3f}")
    elif candidate.ci_low < threshold:
        notes.append(
            f"note: the threshold {threshold:.3f} lies inside the candidate's 95% CI; "
            f"a larger golden set would make this verdict firmer"
        )
    delta = p = None
    if champion is not None:
        delta = candidate.accuracy - champion.accuracy
        p = p_value_worse(candidate, champion)
        if delta < -max_regression:
            reasons.append(
                f"regressed vs champion by {-delta:.3f}, more than max_regression "
                f"{max_regression:.3f} (one-sided p={p:.3g})"
            )
        elif p < 0.05:
            notes.append(f"note: candidate is significantly worse than champion (p={p:.3g}) "
                         f"though within max_regression")  # fmt: skip
        if champion.n != candidate.n:
            notes.append(
                f"note: champion was scored on {champion.n} examples, candidate on "
                f"{candidate.n}; compare on the same golden set"
            )
    return GateResult(
        passed=not reasons,
        candidate=candidate,
        champion=champion,
        threshold=threshold,
        max_regression=max_regression,
        delta=delta,
        p_value=p,
        reasons=tuple(reasons),
        notes=tuple(notes),
    )


def raise_if_failed(result: GateResult) -> None:
    """Raise QualityGateError with the numbers when the gate failed."""
    if result.passed:
        return
    misses = "; ".join(
        f"{m.prompt!r} -> {m.got!r} (want {m.expected!r})" for m in result.candidate.misses[:3]
    )
    raise QualityGateError(
        f"{result.summary()}. Examples of wrong answers: {misses or 'none recorded'}. "
        f"Train or fine-tune a better candidate; change threshold/max_regression in the release "
        f"spec only if the golden set itself changed"
    )
