"""Canary analysis: canary vs stable in the same window -> pass | fail | inconclusive.

policy.py   CanaryPolicy (thresholds, alpha, minimum samples, deadline), samples_needed
stats.py    the tests: bootstrap quantile ratio, Fisher exact, Newcombe interval
checks.py   one function per check -> CheckResult (outcome, numbers, reason)
verdict.py  analyze_step -> StepVerdict, next_action, detect_hard_failure
"""

from validation.analysis.checks import CheckResult, Outcome
from validation.analysis.policy import CanaryPolicy, samples_needed
from validation.analysis.verdict import (
    Action,
    ActionKind,
    CanaryHealth,
    HardFailure,
    StepVerdict,
    aggregate,
    analyze_step,
    detect_hard_failure,
    next_action,
)

__all__ = [
    "Action",
    "ActionKind",
    "CanaryHealth",
    "CanaryPolicy",
    "CheckResult",
    "HardFailure",
    "Outcome",
    "StepVerdict",
    "aggregate",
    "analyze_step",
    "detect_hard_failure",
    "next_action",
    "samples_needed",
]
