"""LatencyState: the latency-like checks (latency, ttft, itl) of one canary step, per
quantile; how they decide is in checks.py's module docstring, the window-level bound in
windows.py."""

from __future__ import annotations

import math

import numpy as np

from validation.analysis import sequential as cs
from validation.analysis.checks import (
    CheckResult,
    Look,
    Outcome,
    Sticky,
    inconclusive,
    needs_text,
    query_sample,
)
from validation.analysis.policy import LatencyCheck
from validation.analysis.windows import PairedWindows, WindowBound
from validation.metrics.base import FloatArray, Metric, MetricSource


class LatencyState:
    """Latency-like values (ms) of both variants over the step, per-quantile CS."""

    def __init__(
        self, name: str, metric: Metric, cfg: LatencyCheck, alpha: float, min_samples: int
    ) -> None:
        self.name, self.metric, self.cfg = name, metric, cfg
        self.alpha, self.min_samples = alpha, cfg.min_samples or min_samples
        self.values: dict[str, list[FloatArray]] = {"canary": [], "stable": []}
        self.step_n = {"canary": 0, "stable": 0}
        self.windows = PairedWindows()
        self.error = ""
        self.sticky = Sticky()

    def new_step(self) -> None:
        """Carry the evidence into the next step (equal conditions): the step's own count
        restarts, and a pass must be shown again."""
        self.step_n = {"canary": 0, "stable": 0}
        self.sticky = Sticky()

    def add(self, source: MetricSource, window_s: float) -> int:
        """One look's values of both variants: one paired window."""
        window: dict[str, FloatArray] = {}
        for variant, chunks in self.values.items():
            got = query_sample(source, self.metric, variant, window_s)
            if isinstance(got, str):
                self.error = got
                continue
            if got.values is None and got.histogram is not None:
                got_values = got.histogram.as_values()
            elif got.values is not None:
                got_values = got.values
            else:
                self.error = f"{variant} {self.metric} from {got.source} has no raw values"
                continue
            chunks.append(got_values)
            self.step_n[variant] += got_values.size
            window[variant] = got_values
        self.windows.add(window.get("canary", np.empty(0)), window.get("stable", np.empty(0)))
        return sum(v.size for v in window.values())

    def judge(self, look: Look) -> list[CheckResult]:
        c = np.sort(np.concatenate(self.values["canary"] or [np.empty(0)]))
        s = np.sort(np.concatenate(self.values["stable"] or [np.empty(0)]))
        if c.size == 0 or s.size == 0:
            why = self.error or f"no {self.metric} samples yet"
            return [inconclusive(self.name, why, c.size, s.size)]
        a = self.alpha / (2 * len(self.cfg.quantiles))
        return [self.sticky.settle(self._quantile(c, s, q, a, self.windows.bound(q, 2 * a)), look)
                for q in self.cfg.quantiles]  # fmt: skip

    def _quantile(
        self, c: FloatArray, s: FloatArray, q: float, a: float, w: WindowBound
    ) -> CheckResult:
        cfg, pct = self.cfg, f"p{q * 100:g}"
        c_cs = cs.quantile_cs(c, q, a, presorted=True)
        s_cs = cs.quantile_cs(s, q, a, presorted=True)
        r_lo, r_hi = cs.ratio(c_cs, s_cs)
        d_lo, d_hi = cs.difference(c_cs, s_cs)
        qc, qs = cs.order_quantile(c, q), cs.order_quantile(s, q)
        est = qc / qs if qs > 0 else math.inf
        per_request = r_lo > cfg.max_ratio and d_lo > cfg.min_increase_ms
        beyond = not cfg.window_bound or w.low > cfg.max_ratio or r_lo > cfg.window_max_factor
        fails = per_request and beyond
        over = cfg.max_ms is not None and c_cs[0] > cfg.max_ms
        enough = min(self.step_n.values()) >= self.min_samples
        within = r_hi <= cfg.pass_limit or d_hi <= cfg.min_increase_ms or w.high <= cfg.pass_limit
        under = cfg.max_ms is None or c_cs[1] <= cfg.max_ms
        summary = (f"{pct} canary {qc:.4g} ms vs stable {qs:.4g} ms, ratio {est:.3g} "
                   f"CS [{r_lo:.3g}, {r_hi:.3g}], increase CS [{d_lo:.3g}, {d_hi:.3g}] "
                   f"ms, over {w.windows} windows {w.ratio:.3g} CS [{w.low:.3g}, "
                   f"{w.high:.3g}]")  # fmt: skip
        needs = None
        if fails or over:
            outcome = Outcome.FAIL
            why = (f"beyond max_ratio {cfg.max_ratio:g} and the {cfg.min_increase_ms:g} ms "
                   "floor" if fails else f"canary {pct} confidently above max_ms "
                   f"{cfg.max_ms:g}")  # fmt: skip
        elif within and under and enough:
            outcome, why = Outcome.PASS, f"within pass_ratio {cfg.pass_limit:g} or the floor"
        elif per_request:
            outcome = Outcome.INCONCLUSIVE
            why = (f"beyond max_ratio {cfg.max_ratio:g} request by request, not yet across "
                   "windows (one slow window is not the canary's)")  # fmt: skip
            needs = f"a window-level CS above {cfg.max_ratio:g}: more windows ({w.windows} so far)"
        else:
            outcome = Outcome.INCONCLUSIVE
            n = min(self.step_n.values())
            why = ("not yet decided" if enough
                   else f"{n} < min_samples {self.min_samples} per variant in this "
                   "step")  # fmt: skip
            needs = needs_text(
                min(c.size, s.size), est, r_lo, r_hi, (cfg.max_ratio, cfg.pass_limit)
            )
        return CheckResult(
            name=f"{self.name}.{pct}", outcome=outcome, reason=f"{summary}: {why}",
            test=f"quantile CS per variant (Howard & Ramdas 2022), alpha {a:.3g} each; window t-CS "
            f"(Wang & Ramdas 2024), alpha {2 * a:.3g}",
            n_canary=c.size, n_stable=s.size, canary_value=qc, stable_value=qs, effect=est,
            ci_low=r_lo, ci_high=r_hi, ci_level=1 - 2 * a, alpha=2 * a,
            diff_low=d_lo, diff_high=d_hi, needs=needs,
            windows=w.windows, window_low=w.low, window_high=w.high,
        )  # fmt: skip
