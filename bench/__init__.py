"""canaryflow benchmarks: each number next to its comparison, measured in the same run.

    python -m bench                          # everything (~30 min on 2 cores), writes RESULTS.md
    python -m bench --quick                  # tiny sizes, one repeat: checks that it all works
    python -m bench --only router,serving    # a subset (names below)

Run from the repository root with PYTHONPATH=. and DOCKER_HOST at canaryflow's engine
(`make bench` sets both). Benchmarks are not tests: nothing here asserts a time.
They run in the order below (later ones reuse numbers of earlier ones in the same run).

    drift        drift check cost, capture JSONL → verdict, for 10k/100k/1M requests
    serving      vLLM vs a plain transformers server (bench/hf_server.py), concurrency 1/4/16
    router       direct to the vLLM containers vs through HAProxy: added latency, RPS ratio
    transitions  failed requests during promote and rollback under steady load
    aa_placement identical stable and canary per CPU placement: p50/p95 ratios at 10/25/50 %
    loadgen      Locust's max RPS on one core against a trivial server (headroom)
    rollback     time to roll back a bad canary / promote a good one vs Flagger's formula
    lead_time    release lead time trigger → verdict on a warm machine, split by step
"""
