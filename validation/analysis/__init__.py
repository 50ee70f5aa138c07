"""Canary analysis: canary vs stable, looked at after every batch, anytime-valid.

policy.py      CanaryPolicy (margins, alpha for the whole rollout, batch size, deadline)
sequential.py  confidence sequences: quantiles, rates, bounded means (valid at every look)
checks.py      one sequential state per check -> CheckResult (estimate, CS, decided at)
verdict.py     StepAnalysis -> StepVerdict; detect_hard_failure
stats.py       fixed-horizon tests (bootstrap quantile ratio, Fisher, Newcombe): the
               design the sequential one replaced, kept for bench/sequential.py's baseline
"""

from validation.analysis.checks import CheckResult, Look, Outcome
from validation.analysis.policy import CanaryPolicy
from validation.analysis.verdict import (
    CanaryHealth,
    HardFailure,
    StepAnalysis,
    StepVerdict,
    aggregate,
    detect_hard_failure,
)

__all__ = [
    "CanaryHealth",
    "CanaryPolicy",
    "CheckResult",
    "HardFailure",
    "Look",
    "Outcome",
    "StepAnalysis",
    "StepVerdict",
    "aggregate",
    "detect_hard_failure",
]
