"""The offline gate: candidate and champion answer the same rows of the release's set; the
candidate must reach the absolute floor and be non-inferior to the champion, paired.

    result = evaluate_offline(spec.evaluation, evalset, candidate_answerer, champion_answerer,
                              scoring=MlflowScoring(uri))
    result.reasons, result.metrics, result.tags

Rules:
- A row passes when it passes every scorer (each scorer's `pass_at`).
- Floor: the candidate's pass rate >= `threshold`. Decoding is greedy and the rows are fixed,
  so the rate is a measurement, not a sample: it is compared as a point value (Wilson
  interval reported).
- Non-inferiority vs the champion: the paired pass/fail comparison (McNemar, Agresti-Min
  interval) and, for every fractional scorer (fields, contains), the paired numeric one
  (bootstrap interval, Wilcoxon): each interval's lower bound must lie above -margin.
  Requiring all of them is an intersection-union test, so the false-pass rate stays at
  alpha without a multiplicity correction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from validation.evaluation.mlflow_scoring import LocalScoring, RowScores, Scoring
from validation.evaluation.paired import PairedResult, paired_numeric, paired_pass_fail
from validation.evaluation.rows import EvaluationSet
from validation.evaluation.scorers import FRACTIONAL, passes
from validation.evaluation.spec import EvaluationSpec
from validation.quality import Answerer, wilson


@dataclass(frozen=True)
class OfflineEvaluation:
    """What the offline gate measured and decided."""

    passed: bool
    n: int
    pass_rate: float
    champion_pass_rate: float | None
    comparisons: tuple[PairedResult, ...]
    reasons: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    misses: tuple[str, ...] = ()


def row_passes(spec: EvaluationSpec, scores: RowScores, evalset: EvaluationSet) -> list[bool]:
    return [all(passes(s, scores[r.row_id][s.label]) for s in spec.scorers)
            for r in evalset.rows]  # fmt: skip


def answer(answerer: Answerer, evalset: EvaluationSet) -> list[str]:
    """One completion per row, in order (the answerer is asked once, batched)."""
    outs = answerer.complete([r.prompt for r in evalset.rows])
    if len(outs) != len(evalset.rows):
        raise ValueError(
            f"answerer returned {len(outs)} completions for {len(evalset.rows)} rows; it must "
            f"return exactly one per row, in order"
        )
    return outs


def evaluate_offline(
    spec: EvaluationSpec,
    evalset: EvaluationSet,
    candidate: Answerer,
    champion: Answerer | None = None,
    scoring: Scoring | None = None,
    tags: dict[str, str] | None = None,
) -> OfflineEvaluation:
    """Score both on the same rows, then floor + paired non-inferiority."""
    scoring = scoring or LocalScoring()
    tags = dict(tags or {})
    cand_out = answer(candidate, evalset)
    cand_scores, cand_run = scoring.score(evalset, spec.scorers, cand_out, "candidate", tags)
    if cand_run:
        tags["canaryflow.eval_candidate_run"] = cand_run
    champ_scores = None
    if champion is not None:
        champ_out = answer(champion, evalset)
        champ_scores, champ_run = scoring.score(evalset, spec.scorers, champ_out, "champion",
                                                tags)  # fmt: skip
        if champ_run:
            tags["canaryflow.eval_champion_run"] = champ_run
    result = judge(spec, evalset, cand_scores, champ_scores)
    misses = tuple(f"{r.prompt!r} -> {out!r}" for r, out, ok in
                   zip(evalset.rows, cand_out, row_passes(spec, cand_scores, evalset),
                       strict=True) if not ok)[:3]  # fmt: skip
    return OfflineEvaluation(**{**result.__dict__, "tags": {**result.tags, **tags},
                                "misses": misses})  # fmt: skip


def judge(
    spec: EvaluationSpec,
    evalset: EvaluationSet,
    candidate: RowScores,
    champion: RowScores | None,
) -> OfflineEvaluation:
    """The gate on per-row scores (pure: unit-testable without models)."""
    cand_pass = row_passes(spec, candidate, evalset)
    n = len(cand_pass)
    rate = sum(cand_pass) / n
    low, high = wilson(sum(cand_pass), n)
    reasons: list[str] = []
    if rate < spec.threshold:
        reasons.append(f"pass rate {rate:.3f} ({sum(cand_pass)}/{n}) is below the threshold "
                       f"{spec.threshold:.3f}")  # fmt: skip
    metrics = {"eval.n": float(n), "eval.pass_rate": rate, "eval.pass_rate_ci_low": low,
               "eval.pass_rate_ci_high": high}  # fmt: skip
    for s in spec.scorers:
        metrics[f"eval.{s.label}.mean"] = _mean([candidate[r.row_id][s.label].value
                                                 for r in evalset.rows])  # fmt: skip
    comparisons: list[PairedResult] = []
    champ_rate = None
    if champion is not None:
        champ_pass = row_passes(spec, champion, evalset)
        champ_rate = sum(champ_pass) / n
        comparisons.append(paired_pass_fail("pass", cand_pass, champ_pass, spec.margin,
                                            spec.alpha))  # fmt: skip
        for s in spec.scorers:
            if s.kind in FRACTIONAL:
                comparisons.append(paired_numeric(
                    s.label, [candidate[r.row_id][s.label].value for r in evalset.rows],
                    [champion[r.row_id][s.label].value for r in evalset.rows],
                    spec.margin, spec.alpha))  # fmt: skip
        for c in comparisons:
            metrics.update(_comparison_metrics(c))
            if not c.non_inferior:
                reasons.append(f"not non-inferior to the champion: {c.describe()}")
    return OfflineEvaluation(passed=not reasons, n=n, pass_rate=rate, champion_pass_rate=champ_rate,
                             comparisons=tuple(comparisons), reasons=tuple(reasons),
                             metrics=metrics)  # fmt: skip


def _comparison_metrics(c: PairedResult) -> dict[str, float]:
    base = f"eval.paired.{c.metric}"
    return {f"{base}.champion": c.champion, f"{base}.diff": c.diff, f"{base}.ci_low": c.ci_low,
            f"{base}.ci_high": c.ci_high, f"{base}.p_value": c.p_value,
            f"{base}.p_noninferior": c.p_noninferior, f"{base}.margin": c.margin,
            f"{base}.discordant_candidate": float(c.discordant[0]),
            f"{base}.discordant_champion": float(c.discordant[1])}  # fmt: skip


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
