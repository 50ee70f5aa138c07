"""The record to look at: pictures per step and a weight timeline, linked via the MLflow UI."""

from __future__ import annotations

import math
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from infra.controller import pictures, report
from infra.controller.record import ReleaseOutcome, StepRecord
from tasks import report as report_task
from validation.analysis.policy import CanaryPolicy

UI = "http://127.0.0.1:5000"
RUN_PAGE = f"{UI}/#/experiments/3/runs/abc123"


def _row(check: str, outcome: str, effect: float | None, lo: float | None, hi: float | None,
         n: int = 400) -> dict[str, Any]:  # fmt: skip
    return {"check": check, "outcome": outcome, "effect": effect, "ci_low": lo, "ci_high": hi,
            "canary": None, "stable": None, "n_canary": n, "n_stable": n}  # fmt: skip


def _step(weight: int, attempt: int, action: str, rows: list[dict[str, Any]],
          reports: dict[str, Path] | None = None) -> StepRecord:  # fmt: skip
    outcome = {"advance": "pass", "retry": "fail", "rollback": "fail"}[action]
    return StepRecord(weight=weight, attempt=attempt, requests=400, outcome=outcome,
                      action=action, reason=f"{action} because", table=rows,
                      elapsed_s=30.0 + weight, reports=reports or {})  # fmt: skip


def _steps(tmp_path: Path) -> tuple[StepRecord, ...]:
    html = tmp_path / "locust.html"
    html.write_text("<html>locust</html>")
    paired = tmp_path / "paired.jsonl"
    paired.write_text("{}\n")
    first = [
        _row("latency.p50", "pass", 1.02, 0.95, 1.1),
        _row("ttft.p99", "pass", 1.1, 0.9, 1.3),
        _row("error_rate", "pass", 0.0, -0.01, 0.005),
        _row("quality", "pass", 0.0, -0.05, 0.04),
    ]
    second = [
        _row("latency.p99", "inconclusive", 1.4, 0.7, math.inf),  # unbounded CS
        _row("itl.p50", "inconclusive", None, None, None, n=0),  # no data yet
        _row("error_rate", "fail", 0.08, 0.03, 0.12),
        {"check": "drift", "outcome": "pass"},
    ]
    return (_step(10, 0, "advance", first, {"locust": html, "paired": paired}),
            _step(25, 0, "retry", second), _step(25, 1, "advance", first))  # fmt: skip


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_a_picture_per_step_and_a_timeline_with_missing_and_inconclusive_checks(
    tmp_path: Path,
) -> None:
    steps = _steps(tmp_path)
    margins = pictures.margins_from_policy(CanaryPolicy())
    files, notes = pictures.draw_all(steps, "promoted", tmp_path / "pics", margins)
    assert notes == []
    assert list(files) == ["pictures/step-10-0.png", "pictures/step-25-0.png",
                           "pictures/step-25-1.png", "pictures/weights.png"]  # fmt: skip
    expected = (int(pictures.SIZE_IN[0] * pictures.DPI), int(pictures.SIZE_IN[1] * pictures.DPI))
    for path in files.values():
        assert _png_size(path) == expected
        assert path.stat().st_size > 10_000  # axes, points and labels, not a blank canvas


def test_a_release_rolled_back_at_its_first_step_still_gets_its_pictures(tmp_path: Path) -> None:
    hard = StepRecord(weight=10, attempt=0, requests=50, outcome="hard_failure",
                      action="rollback", reason="5xx burst", table=[], elapsed_s=4.0)  # fmt: skip
    files, notes = pictures.draw_all((hard,), "rolled_back", tmp_path)
    assert notes == []
    assert set(files) == {"pictures/step-10-0.png", "pictures/weights.png"}
    for path in files.values():
        assert _png_size(path)[0] > 0
        assert path.stat().st_size > 5_000


def test_a_picture_that_cannot_be_drawn_is_a_note_not_an_error(tmp_path: Path) -> None:
    bad = _step(10, 0, "advance", [_row("latency.p50", "pass", 1.0, 0.9, 1.1)])
    (tmp_path / "step-10-0.png").mkdir()  # savefig cannot write over a directory
    files, notes = pictures.draw_all((bad,), "promoted", tmp_path)
    assert list(files) == ["pictures/weights.png"]
    assert len(notes) == 1
    assert notes[0].startswith("picture step-10-0.png was not drawn")


def _outcome(tmp_path: Path, **update: Any) -> ReleaseOutcome:
    return ReleaseOutcome(release_id="r-1", model_name="m", version="2", verdict="promoted",
                          steps=_steps(tmp_path), **update)  # fmt: skip


def test_the_markdown_links_reports_and_pictures_through_the_mlflow_ui(tmp_path: Path) -> None:
    bare = _outcome(tmp_path)
    arts = tuple(a for _p, a in report.report_artifacts(bare).values())
    assert arts == ("reports/step-10-0/locust.html", "reports/step-10-0/paired.jsonl")
    logged = {"links": {"mlflow": RUN_PAGE}, "artifacts": (*arts, "pictures/step-10-0.png")}
    text = report.markdown(bare.model_copy(update=logged))
    assert "file://" not in text
    assert f"[locust-step-10-0]({RUN_PAGE}/artifacts/reports/step-10-0/locust.html)" in text
    assert f"![step-10-0]({UI}/get-artifact?path=pictures%2Fstep-10-0.png&run_uuid=abc123)" in text
    assert f"[step-10-0 in MLflow]({RUN_PAGE}/artifacts/pictures/step-10-0.png)" in text
    assert "[![" not in text  # the Prefect UI shows an image inside a link as raw text
    links = re.findall(r"\]\((http[^)]+)\)", text)
    assert len(links) == 5  # the run, two reports, a picture (its image and its page)
    assert all(u.startswith(f"{UI}/") for u in links)


def test_without_an_mlflow_ui_the_markdown_names_paths_never_file_links(tmp_path: Path) -> None:
    outcome = _outcome(tmp_path)
    text = report.markdown(outcome)  # not logged anywhere: the worker's path, as text
    assert "file://" not in text
    assert "](" not in text.split("## Reports")[1]
    logged = outcome.model_copy(update={"artifacts": ("reports/step-10-0/locust.html",)})
    assert "`reports/step-10-0/locust.html` in the release's MLflow run" in report.markdown(logged)


def test_the_mlflow_run_holds_reports_and_pictures_and_a_failed_picture_is_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One store for both runs: a fresh sqlite store costs seconds to migrate."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    logged = report_task.log_release_record(uri, _outcome(tmp_path), CanaryPolicy())
    assert logged.notes == ()
    pics = {a.path for a in client.list_artifacts(logged.run_id, "pictures")}
    assert pics == {"pictures/step-10-0.png", "pictures/step-25-0.png",
                    "pictures/step-25-1.png", "pictures/weights.png"}  # fmt: skip
    reps = {a.path for a in client.list_artifacts(logged.run_id, "reports/step-10-0")}
    assert reps == {"reports/step-10-0/locust.html", "reports/step-10-0/paired.jsonl"}
    assert set(logged.artifacts) == pics | reps
    stored = client.download_artifacts(logged.run_id, "report.md", str(tmp_path / "dl"))
    assert "file://" not in Path(stored).read_text()

    def broken(*_a: object, **_k: object) -> Path:
        raise RuntimeError("no font cache")

    monkeypatch.setattr(pictures, "timeline_png", broken)
    failed = report_task.log_release_record(uri, _outcome(tmp_path))
    assert failed.notes == ("picture weights.png was not drawn: RuntimeError: no font cache",)
    assert "pictures/weights.png" not in failed.artifacts
    assert "pictures/step-10-0.png" in failed.artifacts
    assert client.get_run(failed.run_id).data.tags["canaryflow.verdict"] == "promoted"
    stored = client.download_artifacts(failed.run_id, "report.md", str(tmp_path / "d2"))
    assert "no font cache" in Path(stored).read_text()
