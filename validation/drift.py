"""Drift of prompts and outputs with Evidently 0.7 (Report + DataDriftPreset).

In a canary step: reference = the stable's answers, current = the canary's, both from the
same traffic of the same step (infra/load/step.py). In the drift check: reference = the
release's evaluation set (prompts, and its expected responses where every row has one),
current = a window of live traffic. Both are frames with a `prompt` and a `completion`
column (`frame_from_examples`, or `validation.metrics.capture_log.read_capture`).
`features` derives, vectorised:

    prompt_length   numerical    characters of the prompt          K-S test (p-value)
    output_length   numerical    characters of the completion      K-S test (p-value)
    answer_format   categorical  the completion's shape: empty,    Z-test of proportions
                                 number, json, json_invalid, code,
                                 line, multiline (`answer_shape`)
    prompt          text         the prompt itself                 Evidently's domain
                                                                   classifier: drift when
                                                                   its ROC AUC > 0.55

The shapes hold for any model (a number, a JSON object, a paragraph): none assumes the
demo's integer answers. `outputs=False` compares the prompt columns only, for a reference
with no answers to compare with (an evaluation set without expected responses: its empty
completions would make every model's outputs look drifted).

Column drift flags are Evidently's own test outcomes; the drift share is the share of
drifted columns. Inputs larger than `max_rows` per side are sampled with a seed (the 1M-row
drift check reads everything but tests a seeded sample: K-S and the classifier are already
decisive at tens of thousands of rows, and their cost grows with n). Evidently is imported
only when a report is computed, so importing this module is cheap.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict

from validation.golden import Example
from validation.metrics.base import DriftError

_NUMBER = r"[-+]?(\d[\d,_]*(\.\d*)?|\.\d+)([eE][-+]?\d+)?%?"
SHAPES = ("empty", "number", "json", "json_invalid", "code", "line", "multiline")
NUMERICAL = ["prompt_length", "output_length"]
CATEGORICAL = ["answer_format"]
TEXT = ["prompt"]
PROMPT_NUMERICAL = ["prompt_length"]
P_VALUE_METHODS = frozenset({"ks", "z", "chisquare", "fisher_exact", "mannw", "t_test"})


class ColumnDrift(BaseModel):
    """One column's drift test as Evidently ran it."""

    model_config = ConfigDict(frozen=True)

    column: str
    method: str
    score: float  # p-value for p-value methods, else the method's distance/AUC
    threshold: float
    p_value: float | None
    drifted: bool


class DriftResult(BaseModel):
    """Drift of current vs reference: the share, per-column results, and the sizes."""

    model_config = ConfigDict(frozen=True)

    drift_share: float
    dataset_drift: bool  # drift_share >= the share threshold the report was run with
    columns: tuple[ColumnDrift, ...]
    n_reference: int
    n_current: int
    html_path: str | None = None
    seconds: float = 0.0

    def column(self, name: str) -> ColumnDrift:
        for col in self.columns:
            if col.column == name:
                return col
        raise KeyError(f"no drift result for column {name!r}")


def frame_from_examples(examples: Iterable[Example]) -> pd.DataFrame:
    """prompt/completion frame of golden or training examples (completion = the answer)."""
    rows = [(ex.prompt, ex.answer) for ex in examples]
    return pd.DataFrame(rows, columns=["prompt", "completion"])


def features(frame: pd.DataFrame) -> pd.DataFrame:
    """The drift columns of a frame with `prompt` and `completion` (missing text -> "")."""
    missing = {"prompt", "completion"} - set(frame.columns)
    if missing:
        raise DriftError(f"drift needs columns prompt and completion; missing {sorted(missing)}")
    prompt = frame["prompt"].fillna("").astype(str)
    completion = frame["completion"].fillna("").astype(str)
    return pd.DataFrame({
        "prompt": prompt.to_numpy(),
        "prompt_length": prompt.str.len().to_numpy(dtype=np.int64),
        "output_length": completion.str.len().to_numpy(dtype=np.int64),
        "answer_format": answer_shape(completion).to_numpy(),
    })  # fmt: skip


def answer_shape(completion: pd.Series) -> pd.Series:
    """Each completion's shape (one of SHAPES): what a model's answers look like, whatever
    the task; a canary whose JSON starts failing to parse, or whose one-line answers turn
    into paragraphs, changes the mix."""
    text = completion.fillna("").astype(str).str.strip()
    shape = pd.Series("line", index=text.index, dtype=object)
    shape[text.str.contains("\n", regex=False)] = "multiline"
    shape[text.str.startswith("```")] = "code"
    bracketed = text.str.match(r"[\[{]")
    shape[bracketed] = [_json_shape(t) for t in text[bracketed]]
    shape[text.str.fullmatch(_NUMBER)] = "number"
    shape[text == ""] = "empty"
    return shape


def _json_shape(text: str) -> str:
    try:
        json.loads(text)
    except ValueError:
        return "json_invalid"
    return "json"


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    html_path: Path | None = None,
    drift_share: float = 0.5,
    max_rows: int | None = 50_000,
    seed: int = 0,
    text: bool = True,
    outputs: bool = True,
) -> DriftResult:
    """Run Evidently's drift preset on the features of both frames; save HTML if asked.

    `outputs=False`: the prompt columns only (the reference has no answers to compare)."""
    if reference.empty or current.empty:
        raise DriftError(
            f"drift needs rows on both sides (reference {len(reference)}, current "
            f"{len(current)}); widen the window or check that capture is on"
        )
    ref = features(_sample(reference, max_rows, seed))
    cur = features(_sample(current, max_rows, seed + 1))
    start = time.perf_counter()
    run = _run_report(ref, cur, drift_share, text, outputs)
    if html_path is not None:
        html_path.parent.mkdir(parents=True, exist_ok=True)
        run.save_html(str(html_path))
    columns, share = _parse(run.dict())
    return DriftResult(
        drift_share=share,
        dataset_drift=share >= drift_share,
        columns=columns,
        n_reference=len(ref),
        n_current=len(cur),
        html_path=None if html_path is None else str(html_path),
        seconds=time.perf_counter() - start,
    )


def _sample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed)


def _run_report(
    ref: pd.DataFrame, cur: pd.DataFrame, drift_share: float, text: bool, outputs: bool = True
) -> Any:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset
    from sklearn.exceptions import ConvergenceWarning  # type: ignore[import-untyped]

    numerical = NUMERICAL if outputs else PROMPT_NUMERICAL
    categorical = CATEGORICAL if outputs else []
    columns = numerical + categorical + (TEXT if text else [])
    definition = DataDefinition(
        numerical_columns=numerical,
        categorical_columns=categorical,
        text_columns=TEXT if text else [],
    )
    # Evidently would pick a bootstrapped classifier for <= 1000 reference rows (10-20 s
    # on 2 cores); the absolute ROC-AUC method is one fit, and the same at every size.
    preset = DataDriftPreset(
        columns=columns,
        drift_share=drift_share,
        num_method="ks",
        cat_method="z",
        text_method="abs_text_content_drift",
    )
    try:
        with warnings.catch_warnings():
            # noise for our use: numpy on constant columns (every answer one shape), and
            # the text classifier's SGD stopping at max_iter (its ROC AUC is still valid)
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            return Report([preset], include_tests=True).run(
                Dataset.from_pandas(cur[columns], data_definition=definition),
                Dataset.from_pandas(ref[columns], data_definition=definition),
            )
    except Exception as exc:  # Evidently raises bare ValueErrors/KeyErrors
        raise DriftError(f"Evidently could not compute drift: {type(exc).__name__}: {exc}") from exc


def _parse(result: dict[str, Any]) -> tuple[tuple[ColumnDrift, ...], float]:
    """Per-column drift from ValueDrift metrics + their tests; the share from the count."""
    status = {
        t["metric_config"]["metric_id"]: str(getattr(t["status"], "value", t["status"]))
        for t in result.get("tests", [])
    }
    columns: list[ColumnDrift] = []
    share: float | None = None
    for metric in result.get("metrics", []):
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith(":ValueDrift"):
            method, score = str(config["method"]), float(metric["value"])
            columns.append(ColumnDrift(
                column=str(config["column"]), method=method, score=score,
                threshold=float(config["threshold"]),
                p_value=score if method in P_VALUE_METHODS else None,
                drifted=status.get(metric["id"], "").upper() == "FAIL",
            ))  # fmt: skip
    if share is None or not columns:
        raise DriftError("Evidently's result has no drift share or no per-column drift")
    return tuple(columns), share
