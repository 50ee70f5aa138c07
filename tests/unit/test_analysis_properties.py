"""Statistical properties of the whole rollout's judgement, by seeded simulation.

The worst case for a false rollback: an A/A canary (identical to the stable) with every
tolerance at zero, so only the confidence sequences stand between noise and a rollback,
watched after every batch (400 requests) of all three steps [10, 25, 50] for 8 batches
each, undecided steps moving on (bench/seqsim.py: the traffic model; monitor=True).
Measured when written (seeded, so the same on every run), alpha 0.05 for the whole rollout:

    sequential design (this)                            0 / 30 rollouts rolled back
    today's fixed-horizon test, looked at every batch   9 / 30 (0.30: alpha per step, per look)
    today's design as it ran (probe + window, 3 steps)  3 / 30 (0.10: alpha per step)

bench/sequential.py prints the same comparison over more rollouts.
"""

from __future__ import annotations

from bench.seqsim import Tolerances, World, fixed_horizon_monitored, sequential_rollout
from validation.analysis import CanaryPolicy

ZERO = {"max_ratio": 1.0, "min_increase_ms": 0.0}
STRICT = CanaryPolicy(  # every tolerance at zero: only the confidence sequences decide
    drift={"enabled": False},
    ttft={"enabled": False},  # the same LatencyState as latency; off to keep this fast
    itl={"enabled": False},
    latency=ZERO,
    error_rate={"max_increase": 0.0},
    quality={"max_drop": 0.0},
    progress_deadline_s=32.0,  # 8 batches of 400 at 100 req/s per step
)
RUNS = 30


def test_aa_false_rollback_over_a_whole_rollout_is_at_most_alpha() -> None:
    fails = sum(
        sequential_rollout(World(), STRICT, seed, monitor=True).outcome == "fail"
        for seed in range(RUNS)
    )
    assert fails / RUNS <= STRICT.alpha


def test_todays_test_under_the_same_monitoring_alarms_far_more_often() -> None:
    fails = sum(
        fixed_horizon_monitored(World(), seed, 8, 400, Tolerances(1.0, 0.0, 0.0))
        for seed in range(RUNS)
    )
    assert fails / RUNS > STRICT.alpha  # the reason for the sequential design


def test_power_a_broken_canary_is_rolled_back_at_the_first_step() -> None:
    policy = CanaryPolicy(drift={"enabled": False})
    for world in (World(latency_factor=2.0), World(error_increase=0.05), World(quality_drop=0.2)):
        for seed in range(3):
            got = sequential_rollout(world, policy, seed)
            assert (got.outcome, got.step) == ("fail", 10), (world, got)
            assert got.requests <= 8000


def test_window_noise_does_not_roll_identical_canaries_back() -> None:
    """One variant slower for a whole paired window (log-SD 0.7: identical models on 2
    loaded cores): per-request bounds alone rolled 24 of 30 identical canaries back; with
    the window-level bound the default policy, watched at every look, stays within alpha,
    and a 2x slower twin under the same noise is still rolled back."""
    policy = CanaryPolicy(drift={"enabled": False}, progress_deadline_s=40.0)
    noisy = World(window_sd=0.7)
    fails = sum(
        sequential_rollout(noisy, policy, seed, monitor=True).outcome == "fail"
        for seed in range(RUNS)
    )
    assert fails / RUNS <= policy.alpha
    slow = World(latency_factor=2.0, window_sd=0.3)
    caught = [sequential_rollout(slow, policy, seed, monitor=True) for seed in range(5)]
    assert all(r.outcome == "fail" for r in caught), caught
