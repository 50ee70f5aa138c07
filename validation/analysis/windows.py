"""Window-level latency evidence: one log-ratio of quantiles per paired window.

Per-request confidence sequences (quantile_cs) assume every request independent of every
other. In a paired window both variants answer the same prompts at once, yet on shared cores
one variant can be slower for a whole window (identical models on 2 loaded cores measured
per-window median ratios 0.33-3.16, a window log-SD of about 0.7): thousands of requests
then carry the evidence of one window, and the per-request bound, narrow and centred on
that window's factor, falsely rolls identical canaries back (24 of 30 in simulation).

The window is the unit that is independent: each look's batch gives
d_w = log q_p(canary_w) - log q_p(stable_w), and `t_cs` (anytime-valid, unknown variance)
bounds the mean of d_w, i.e. the typical canary/stable ratio across windows, with the
window-to-window variation counted in. A latency check fails only when both bounds exclude
its margin (the intersection of two alpha-level events: no extra alpha), so a slowdown must
be beyond the margin request by request and persist across windows.

Windows with too few samples for the quantile (fewer than max(10, 2 / (1 - p)) per
variant) are merged with the next ones, in order: the merge depends only on counts, never
on values, so the windows stay independent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from validation.analysis import sequential as cs
from validation.metrics.base import FloatArray

_TINY_MS = 1e-6  # a zero quantile (a cached answer) must not make log() infinite


def window_min(p: float) -> int:
    """Samples per variant a window needs before its p-quantile counts."""
    return max(10, math.ceil(2 / (1 - p)))


@dataclass(frozen=True)
class WindowBound:
    """The typical canary/stable ratio of the p-quantile across windows, with its CS."""

    windows: int
    ratio: float  # exp(mean d_w); nan with no window yet
    low: float  # CS of that ratio (0 / inf while unbounded)
    high: float


@dataclass
class PairedWindows:
    """Both variants' values, window by window (one window per look)."""

    canary: list[FloatArray] = field(default_factory=list)
    stable: list[FloatArray] = field(default_factory=list)

    def add(self, canary: FloatArray, stable: FloatArray) -> None:
        self.canary.append(np.asarray(canary, dtype=np.float64))
        self.stable.append(np.asarray(stable, dtype=np.float64))

    def log_ratios(self, p: float) -> FloatArray:
        """d_w of every complete (merged) window, in order."""
        need, out, start = window_min(p), [], 0
        for end in range(1, len(self.canary) + 1):
            c = np.concatenate(self.canary[start:end])
            s = np.concatenate(self.stable[start:end])
            if min(c.size, s.size) < need:
                continue  # merged with the next window
            qc, qs = cs.order_quantile(np.sort(c), p), cs.order_quantile(np.sort(s), p)
            out.append(math.log(max(qc, _TINY_MS)) - math.log(max(qs, _TINY_MS)))
            start = end
        return np.asarray(out, dtype=np.float64)

    def bound(self, p: float, alpha: float) -> WindowBound:
        d = self.log_ratios(p)
        if d.size == 0:
            return WindowBound(0, math.nan, 0.0, math.inf)
        lo, hi = cs.t_cs(d, alpha)
        return WindowBound(int(d.size), math.exp(float(np.mean(d))),
                           math.exp(lo) if math.isfinite(lo) else 0.0,
                           math.exp(hi) if math.isfinite(hi) else math.inf)  # fmt: skip
