"""Load through the router: Locust, run as a subprocess, with per-variant results.

    prompts.py     PromptSource: golden set, replay of captured traffic, or a synthetic mix
    job.py         LoadJob: what the pipeline hands the locustfile (a JSON file, no secrets)
    locustfile.py  ChatUser: OpenAI chat completions; stops itself after a request budget
    records.py     RequestRecord (one JSONL line per request), VariantSummary, summarize()
    runner.py      LoadProfile, run_load() -> LoadResult
    paired.py      run_paired(): each evaluation row to BOTH variants directly, streamed,
                   interleaved, equal concurrency (the equal-conditions window)
    topup.py       plan_top_up(): the router load sends only what captured user traffic
                   has not supplied; NoTrafficError when the load is disabled and none came
    evidence.py    step_source(): which metric comes from which source (RoutedSource)
    step.py        LocustStepLoad: one step run (top-up load, paired window) -> StepEvidence

Locust is never imported into the pipeline process: its gevent monkey-patching hangs a
Prefect flow process. `run_load` starts `python -m locust --headless ...` in its own process
group and kills that group if it overruns.

Errors (defined in infra/errors.py):

    LoadError                     load could not be sent or yielded no evidence
    ├── LocustMissingError        locust is not installed in the pipeline environment
    ├── PromptSourceError         the prompt file is missing, empty or unreadable
    ├── RouterUnreachableError    the router did not answer the probe before the start
    ├── LoadTimeoutError          Locust ran past the hard timeout and was killed
    ├── LocustFailedError         Locust exited with an error (the log tail says why)
    ├── NoRequestsCompletedError  not one request got an HTTP response
    ├── NoTrafficError            no user traffic and the load disabled: the step waits
    └── PairedWindowError         a variant's direct endpoint is missing or not loopback
"""

from __future__ import annotations

from infra.errors import (
    LoadError,
    LoadTimeoutError,
    LocustFailedError,
    LocustMissingError,
    NoRequestsCompletedError,
    NoTrafficError,
    PairedWindowError,
    PromptSourceError,
    RouterUnreachableError,
)

__all__ = [
    "LoadError",
    "LoadTimeoutError",
    "LocustFailedError",
    "LocustMissingError",
    "NoRequestsCompletedError",
    "NoTrafficError",
    "PairedWindowError",
    "PromptSourceError",
    "RouterUnreachableError",
]
