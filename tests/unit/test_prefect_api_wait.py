"""PrefectApi.wait tells a person watching what the run does, from the first look on."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from infra.prefect_api import PrefectApi


class _Scripted(PrefectApi):
    """States and log lines in order, one per poll; no server."""

    def __init__(self, states: list[str], lines: list[str | None]) -> None:
        super().__init__("http://127.0.0.1:9/api")
        self.states, self.lines = states, lines

    def flow_run(self, run_id: str) -> dict[str, Any]:
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return {"name": "r", "state_type": state, "state_name": state.title()}

    def latest_log(self, run_id: str) -> str | None:
        return self.lines.pop(0) if len(self.lines) > 1 else self.lines[0]


def test_the_first_look_is_reported_at_once_then_each_new_line() -> None:
    api = _Scripted(["SCHEDULED", "RUNNING", "RUNNING", "RUNNING", "COMPLETED"],
                    [None, "validate", "validate", "build"])  # fmt: skip
    said: list[tuple[str, str | None]] = []
    run = api.wait(
        "x", 10, poll_s=0, on_progress=lambda r, line: said.append((r["state_type"], line))
    )
    assert run["state_type"] == "COMPLETED"
    assert said == [("SCHEDULED", None), ("RUNNING", "validate"), ("RUNNING", "build")]


def test_a_quiet_run_is_still_reported_every_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(float(t) for t in range(0, 1000, 4))
    monkeypatch.setattr("infra.prefect_api.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("infra.prefect_api.time.sleep", lambda s: None)
    api = _Scripted(["RUNNING"] * 8 + ["COMPLETED"], ["deploy"])
    said: list[str | None] = []
    api.wait("x", 900, on_progress=lambda r, line: said.append(line), progress_every_s=10)
    assert len(said) >= 2  # the first look, then again once 10 s passed without a new line


def test_a_waiting_person_hears_something_within_10_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each look costs API time and polls are 2 s apart: the lines still come < 10 s apart
    (with a whole poll slept after a due line, gaps reached 11-12 s in `make demo`)."""
    now = [0.0]

    class Slow(_Scripted):
        def flow_run(self, run_id: str) -> dict[str, Any]:
            now[0] += 0.2  # an API round trip
            return super().flow_run(run_id)

        def latest_log(self, run_id: str) -> str | None:
            now[0] += 0.2
            return super().latest_log(run_id)

    monkeypatch.setattr("infra.prefect_api.time.monotonic", lambda: now[0])
    monkeypatch.setattr("infra.prefect_api.time.sleep", lambda s: now.__setitem__(0, now[0] + s))
    api = Slow(["RUNNING"] * 200 + ["COMPLETED"], ["quiet"])
    at: list[float] = []
    api.wait("x", 3600, poll_s=2.0, on_progress=lambda r, line: at.append(now[0]))
    gaps = [b - a for a, b in itertools.pairwise(at)]
    assert len(gaps) > 20
    assert max(gaps) < 10.0, max(gaps)
