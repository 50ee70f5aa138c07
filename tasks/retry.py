"""The tasks' retry policy: two more tries, 5 s apart, for what a retry can mend.

    @task(name="package-candidate", cache_policy=NONE, **RETRY)

Prefect retries every failure by default; a named refusal (a version an earlier release
rejected, a bad spec, a busy target) then failed three times, 10 s later, with three
tracebacks. `retry_condition_fn` asks infra/controller/failure.worth_retrying instead.
"""

from __future__ import annotations

from typing import Any

from prefect import State

from infra.controller.failure import worth_retrying


def transient(task: Any, task_run: Any, state: State[Any]) -> bool:
    """Prefect's retry condition: the failed state's exception is worth another try."""
    return worth_retrying(state.result(raise_on_failure=False))


RETRY: dict[str, Any] = {"retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": transient}
