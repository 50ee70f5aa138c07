"""One step run of the canary's load: router top-up load, then the paired window; evidence.

    load = LocustStepLoad(spec, target, golden, options=WindowOptions(paired=None))
    evidence = load.run(weight=10, requests=200, out_dir=run_dir)   # a StepEvidence

The real `StepLoad` port (infra/controller/ports.py) that `OfflineCheck.step_load` builds
for each release and `real_ports` (infra/controller/wiring.py) hands the controller.
Heavy imports (pandas, evidently) happen inside the methods that need them.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from infra.controller.ports import StepEvidence
from infra.errors import PairedWindowError, RouterUnreachableError
from infra.load.evidence import crosscheck, golden_rows, rotate, step_source, write_crosscheck
from infra.load.paired import PairedSettings, Row, run_paired
from infra.load.prompts import PromptSource
from infra.load.runner import LoadProfile, LoadResult, run_load
from infra.load.step_drift import StepDriftRows, judge_step_drift
from infra.load.topup import plan_top_up
from infra.spec import ReleaseSpec
from infra.targets.base import DeployTarget, TargetState
from validation.analysis import CanaryHealth
from validation.drift import DriftResult
from validation.metrics.base import Metric, MetricSource, MetricSourceError
from validation.metrics.paired import PairedSource, Scorer
from validation.metrics.prometheus import PrometheusSource
from validation.metrics.traffic import TrafficSource, user_counts

_WINDOW_MARGIN_S = 30.0
_UNRESOLVED_MAX_TOKENS = 256
log = logging.getLogger("canaryflow.load")


@dataclass(frozen=True)
class WindowOptions:
    """How a step's evidence window is collected beyond the router load (all optional).

    rows, scorer   the evaluation rows ((row_id, messages)) and their scorer
                   ((row_id, output) -> [0, 1]) of the paired window; None: the golden set
                   at `reference` with exact match (validation.golden), if that file exists
    paired         size and pace of the paired window; None: no paired window
    load_enabled   False: the router load never sends (user traffic alone), and a window
                   without user traffic on the canary raises NoTrafficError
    """

    rows: Sequence[Row] | None = None
    scorer: Scorer | None = None
    paired: PairedSettings | None = field(default_factory=PairedSettings)
    load_enabled: bool = True


def window_options(spec: ReleaseSpec) -> WindowOptions:
    """Kubernetes endpoints are in-cluster addresses the pipeline cannot reach on loopback:
    no paired window there (the router load's evidence, as before) until one is forwarded."""
    return WindowOptions(paired=None) if spec.target == "kubernetes" else WindowOptions()


class LocustStepLoad:
    """One step run: top-up load through the router, then the paired window; all traffic.

    Per `run(weight, requests, out_dir)`:
    1. user requests captured since the previous run (or the last 30 s) are counted per
       variant; the router load (Locust) sends only what the next decision still needs
       beyond them (infra/load/topup.py), possibly nothing; NoTrafficError when the load
       is disabled and no user request reached the canary;
    2. then, with the router load over (it would load the stable more than the canary), the
       paired window sends evaluation rows to both variants directly (infra/load/paired.py):
       as many pairs as the canary's share of `requests` (what each variant needs), capped
       by `options.paired.pairs` and its time limit; successive runs take the next rows;
    3. the evidence routes each metric to its source (infra/load/evidence.py): speed and
       quality from the paired window, errors and output checks from all traffic.

    `reference` is the release's rows as a prompt file: the router load's prompts
    (prompts='golden') and the paired rows unless `options` gives others. Drift compares the
    canary's answers with the stable's on the step's traffic (infra/load/step_drift.py). `options`
    (keyword, new) defaults to a paired window of PairedSettings() with the load enabled.
    """

    def __init__(
        self,
        spec: ReleaseSpec,
        target: DeployTarget,
        reference: Path,
        *,
        options: WindowOptions | None = None,
    ) -> None:
        self.spec = spec
        self.target = target
        self.reference = reference
        self.options = options or WindowOptions()
        self._rows, self._scorer = self._evaluation()
        self._row_offset = 0
        self._last: tuple[int, float] | None = None  # (weight, wall time) the last run ended
        self._born = time.time()  # this release's analysis began: no evidence from before
        self._drift_judged: int | None = None  # the weight whose drift verdict is in
        # the step's canary and stable rows: drift is judged on all of the step's traffic
        # so far, not only on the last batch's; each batch's file is read once
        self._drift_rows = StepDriftRows()

    def run(self, weight: int, requests: int, out_dir: Path) -> StepEvidence:
        state = self.target.status()
        if state.router_url is None:
            raise RouterUnreachableError(
                "the target reports no running router; the release restores it from its "
                "recorded weights (set_weights) — if this repeats, check `make status`"
            )
        out_dir.mkdir(parents=True, exist_ok=True)
        since = self._window_start(weight)
        capture = _capture_dir(self.target)
        roles = _roles(state)  # the capture's labels are fixed at container start
        plan = plan_top_up(requests, weight, user_counts(capture, since, roles),
                           load_enabled=self.options.load_enabled)  # fmt: skip
        log.info("step %d%%: %s", weight, plan.reason)
        result = None
        if plan.load_requests > 0:
            result = run_load(state.router_url, _api_key(self.target),
                              self.spec.serving.served_model_name, self._profile(), out_dir,
                              requests=plan.load_requests,
                              timeout_s=self.spec.load.max_step_s + 60)  # fmt: skip
        paired = self._paired(weight, requests, out_dir)
        end = time.time()
        self._last = (weight, end)
        window_s = max(end - since, 1e-3)
        records = [p for p in (result.results if result else None, paired) if p is not None]
        prometheus = _prometheus(self.target)
        source = step_source(result.results if result else None, paired, self._scorer,
                             capture, prometheus, clock=lambda: end, roles=roles)  # fmt: skip
        drift = self._step_drift(weight, since, records, out_dir, roles)
        reports = self._reports(result, paired, prometheus, window_s, out_dir)
        traffic = TrafficSource(records, capture, clock=lambda: end, roles=roles).counts(window_s)
        return StepEvidence(source=source, health=_health(state, source, window_s),
                            window_s=window_s, drift=drift,
                            reports=reports, traffic=traffic)  # fmt: skip

    def _window_start(self, weight: int) -> float:
        """The previous run's end at the same weight (windows never overlap), else 30 s ago,
        but never before this step load was made: a window reaching into the previous
        release would count its canary's failures (the same slot, the same router counters)
        as this canary's (seen: a 5xx canary's 63 router errors failed the next release's
        error_rate)."""
        now = time.time()
        if self._last is not None and self._last[0] == weight:
            return min(self._last[1], now)
        return max(now - _WINDOW_MARGIN_S, min(self._born, now))

    def _paired(self, weight: int, requests: int, out_dir: Path) -> Path | None:
        settings = self.options.paired
        if settings is None or not self._rows:
            return None
        share = min(weight, 100 - weight) / 100
        pairs = max(1, min(settings.pairs, math.ceil(requests * share)))
        rows = rotate(self._rows, self._row_offset, pairs)
        self._row_offset = (self._row_offset + pairs) % len(self._rows)
        endpoints = _endpoints(self.target)
        window = replace(
            settings, pairs=pairs, max_tokens=self.spec.load.max_tokens or _UNRESOLVED_MAX_TOKENS
        )
        result = run_paired(endpoints, _api_key(self.target), self.spec.serving.served_model_name,
                            rows, out_dir / "paired.jsonl", window)  # fmt: skip
        log.info("paired window: %d of %d pairs in %.1f s", result.pairs, result.requested,
                 result.duration_s)  # fmt: skip
        return result.records

    def _evaluation(self) -> tuple[list[Row], Scorer | None]:
        if self.options.rows is not None:
            return list(self.options.rows), self.options.scorer
        if self.reference.is_file():
            rows, scorer = golden_rows(self.reference)
            return rows, self.options.scorer or scorer
        return [], self.options.scorer

    def _reports(self, result: LoadResult | None, paired: Path | None,
                 prometheus: PrometheusSource | None, window_s: float, out_dir: Path,
                 ) -> dict[str, Path]:  # fmt: skip
        reports: dict[str, Path] = {}
        if result is not None:
            reports["locust"] = result.html
        if paired is not None:
            reports["paired"] = paired
            if prometheus is not None:
                report = crosscheck(PairedSource(paired), prometheus, window_s)  # Prometheus: now
                reports["crosscheck"] = write_crosscheck(report, out_dir / "crosscheck.json")
        html = out_dir / "evidently.html"
        if html.is_file():
            reports["evidently"] = html
        return reports

    def _profile(self) -> LoadProfile:
        load = self.spec.load
        if load.prompts == "replay":
            prompts = PromptSource(kind="replay", path=Path(load.replay_file or ""))
        elif load.prompts == "golden" and self.reference.is_file():
            prompts = PromptSource(kind="golden", path=self.reference)
        else:
            prompts = PromptSource()
        return LoadProfile(users=load.users, spawn_rate=load.spawn_rate, prompts=prompts,
                           max_tokens=load.max_tokens or _UNRESOLVED_MAX_TOKENS,
                           max_duration_s=load.max_step_s)  # fmt: skip

    def _step_drift(self, weight: int, since: float, records: Sequence[Path], out_dir: Path,
                    roles: Mapping[str, str] | None = None) -> DriftResult | None:  # fmt: skip
        """The drift result of this run, or None once this weight has one that decides.

        The analysis judges drift once per step, on the first look with enough rows
        (validation/analysis/checks.DriftState); computing it again for every later batch
        of the step cost an Evidently run each (9 s of a 36 s batch in the demo) for a
        result nobody reads. The rows are the canary's and the stable's from all of this
        step's traffic so far (infra/load/step_drift.py): judging each batch alone, beside
        another job, a batch held 4 canary answers of the 100 needed and a good v2 was
        rolled back for too few samples at the deadline. Disabled in the policy: never
        computed.
        """
        policy = self.spec.canary.policy
        if not policy.drift.enabled or self._drift_judged == weight:
            return None
        self._drift_rows.start(weight, since)
        self._drift_rows.add_records(records)
        frame = self._drift_rows.frame(_capture_dir(self.target), until=time.time(), roles=roles)
        drift = judge_step_drift(frame, out_dir / "evidently.html", policy.drift.max_share)
        need = policy.min_samples_for(policy.drift)
        if drift is not None and min(drift.n_current, drift.n_reference) >= need:
            self._drift_judged = weight
        return drift


def _health(state: TargetState, source: MetricSource, window_s: float) -> CanaryHealth:
    """The canary's health and its requests / failures over all traffic of the window."""
    healthy = state.canary is not None and state.canary.healthy
    try:
        errors = source.query(Metric.ERRORS, "canary", window_s)
    except MetricSourceError:
        return CanaryHealth(healthy=healthy, requests=0, failures=0)
    return CanaryHealth(healthy=healthy, requests=errors.n, failures=errors.failures or 0)


def _roles(state: TargetState) -> dict[str, str]:
    """{model version: its role now} of what the target serves."""
    pairs = (("stable", state.stable), ("canary", state.canary))
    return {v.model_version: role for role, v in pairs if v is not None}


def _capture_dir(target: DeployTarget) -> Path | None:
    path = getattr(target, "capture_dir", None)
    return Path(path) if path is not None else None


def _endpoints(target: DeployTarget) -> dict[str, str]:
    """Direct URLs by role: DockerTarget / KubernetesTarget `endpoints()` (beyond the protocol)."""
    endpoints = getattr(target, "endpoints", None)
    if endpoints is None:
        raise PairedWindowError(
            f"{type(target).__name__} does not give its variants' direct endpoints "
            "(endpoints()); disable the paired window (WindowOptions(paired=None))"
        )
    return {str(role): e.url for role, e in endpoints().items()}


def _prometheus(target: DeployTarget) -> PrometheusSource | None:
    """The target's Prometheus (DockerTarget.metrics), None when it has none."""
    metrics = getattr(target, "metrics", None)
    url = getattr(metrics, "url", None)
    return PrometheusSource(str(url)) if url else None


def _api_key(target: DeployTarget) -> str:
    key_file = getattr(target, "api_key_file", None)
    return Path(key_file).read_text(encoding="utf-8").strip() if key_file else ""
