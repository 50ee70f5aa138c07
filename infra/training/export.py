"""Training data from captured traffic: the window's user exchanges as train/holdout Parquet.

    data = export_window(capture_dir, out_dir, since=t0, until=t1,
                         evaluation_prompts=prompts, min_requests=50,
                         holdout_fraction=0.2, seed=0)
    data.train_path, data.holdout_path, data.digest, data.summary()

Rows come from the serving capture (serving/capture.py JSONL, already redacted there; raw
bodies are never captured). Kept: 2xx exchanges with a prompt and a completion, sent by users.
Left out: canaryflow's own traffic (request ids `cf-load-…` from the load generator and its
paired window, `smoke-…` from the image smoke test; the launcher's warmup is never captured),
failed requests, exact duplicates (same conversation and completion: one row, `n_seen` counts
them, a copy carrying feedback wins), and every exchange whose prompt — or any user turn of
its conversation — is a prompt of the release's evaluation set (compared case- and
whitespace-insensitively). Feedback a record carries (`feedback`, `correction`, and keys
starting `feedback_` / `correction_`) is kept as JSON text columns.

The split is by prompt and independent of row order: a prompt goes to holdout when
sha256(f"{seed}:{normalized prompt}") falls under `holdout_fraction`, so the same prompt is
never on both sides and re-exporting a window gives the same split. Each side is written
sorted, so the same rows give the same bytes and the same `digest` (sha256 over both files).
Written with pandas/pyarrow rather than as an MLflow dataset because MLflow's datasets are
not versioned outside Databricks (ENVIRONMENT.md); the digest pins it, and the retrain logs
it on its run with `mlflow.data.from_pandas` + `log_inputs` (infra/training/lineage.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]

from infra.errors import EvaluationLeakError, NotEnoughTrainingDataError
from infra.load.wire import SYNTHETIC_REQUEST_PREFIX
from infra.training.request import DataRef
from validation.metrics.capture_log import capture_files

GENERATED_PREFIXES = (SYNTHETIC_REQUEST_PREFIX, "smoke-")
FEEDBACK_KEYS = ("feedback", "correction")
BASE_COLUMNS = ["prompt", "messages", "completion", "n_seen", "ts", "model_version",
                "request_id"]  # fmt: skip
TRAIN_FILE, HOLDOUT_FILE = "train.parquet", "holdout.parquet"
_BUCKETS = 10_000


def normalize(text: str) -> str:
    """What makes two prompts "the same" for exclusion and splitting."""
    return " ".join(text.split()).casefold()


def is_generated(request_id: object) -> bool:
    """canaryflow's own requests (load, paired window, smoke test), not users'."""
    return isinstance(request_id, str) and request_id.startswith(GENERATED_PREFIXES)


def in_holdout(prompt: str, seed: int, fraction: float) -> bool:
    digest = hashlib.sha256(f"{seed}:{normalize(prompt)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _BUCKETS < round(fraction * _BUCKETS)


@dataclass(frozen=True)
class TrainingData:
    """One export: where its files are, their digest, and what was left out."""

    train_path: Path
    holdout_path: Path
    digest: str
    since: float
    until: float
    train: pd.DataFrame
    holdout: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)

    def ref(self) -> DataRef:
        return DataRef(train=str(self.train_path), holdout=str(self.holdout_path),
                       digest=self.digest, window_start=self.since, window_end=self.until,
                       n_train=len(self.train), n_holdout=len(self.holdout),
                       columns=list(self.train.columns))  # fmt: skip

    def summary(self) -> str:
        c = self.counts
        return (f"{len(self.train)} train + {len(self.holdout)} holdout rows (digest "
                f"{self.digest[:12]}) from {c.get('captured', 0)} captured requests; left out "
                f"{c.get('generated', 0)} canaryflow-generated, {c.get('failed', 0)} failed, "
                f"{c.get('evaluation', 0)} evaluation-set prompts, "
                f"{c.get('duplicates', 0)} duplicates")  # fmt: skip


def export_window(
    capture_dir: Path,
    out_dir: Path,
    *,
    since: float,
    until: float,
    evaluation_prompts: Iterable[str],
    min_requests: int,
    holdout_fraction: float,
    seed: int,
) -> TrainingData:
    """Export the window (see the module doc); NotEnoughTrainingDataError below min_requests."""
    banned = {normalize(p) for p in evaluation_prompts}
    counts = {"captured": 0, "generated": 0, "failed": 0, "evaluation": 0, "duplicates": 0}
    rows: list[dict[str, Any]] = []
    for rec in _records(capture_dir, since, until):
        counts["captured"] += 1
        if is_generated(rec.get("request_id")):
            counts["generated"] += 1
        elif (row := _row(rec)) is None:
            counts["failed"] += 1
        elif banned & _user_turns(row):
            counts["evaluation"] += 1
        else:
            rows.append(row)
    frame = _deduplicate(pd.DataFrame(rows, columns=_columns(rows)))
    counts["duplicates"] = len(rows) - len(frame)
    if len(frame) < min_requests:
        raise NotEnoughTrainingDataError(
            f"{len(frame)} usable captured user requests in the window, {min_requests} needed "
            f"(of {counts['captured']} captured: {counts['generated']} canaryflow-generated, "
            f"{counts['failed']} failed, {counts['evaluation']} evaluation-set prompts, "
            f"{counts['duplicates']} duplicates left out); widen window_s, lower min_requests, "
            "or wait for more traffic"
        )
    holdout = frame["prompt"].map(lambda p: in_holdout(p, seed, holdout_fraction)).astype(bool)
    if holdout.all():
        raise NotEnoughTrainingDataError(
            f"all {len(frame)} usable requests fell into the holdout split "
            f"(holdout_fraction={holdout_fraction}); lower it or widen window_s"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = {TRAIN_FILE: frame[~holdout], HOLDOUT_FILE: frame[holdout]}
    sha = hashlib.sha256()
    for name, side in sides.items():
        side.sort_values(["prompt", "completion", "messages"]).reset_index(drop=True).to_parquet(
            out_dir / name, index=False, engine="pyarrow"
        )
        sha.update((out_dir / name).read_bytes())
    train = pd.read_parquet(out_dir / TRAIN_FILE)
    held = pd.read_parquet(out_dir / HOLDOUT_FILE)
    check_no_evaluation_prompts(train, banned, out_dir / TRAIN_FILE)
    check_no_evaluation_prompts(held, banned, out_dir / HOLDOUT_FILE)
    return TrainingData(out_dir / TRAIN_FILE, out_dir / HOLDOUT_FILE, sha.hexdigest(), since,
                        until, train, held, counts)  # fmt: skip


def check_no_evaluation_prompts(frame: pd.DataFrame, banned: set[str], where: Path) -> None:
    """The guard on what a trainer is handed: EvaluationLeakError if any row would leak."""
    leaked = [row["prompt"] for row in frame.to_dict("records") if banned & _user_turns(row)]
    if leaked:
        raise EvaluationLeakError(
            f"{where} holds {len(leaked)} evaluation-set prompt(s), e.g. {leaked[0]!r}: a "
            "candidate trained on them would be judged on what it memorised. Nothing was "
            "trained; remove them from the data (the capture export does) and retry"
        )


def _records(capture_dir: Path, since: float, until: float) -> Iterator[dict[str, Any]]:
    files = capture_files(capture_dir) if capture_dir.is_dir() else []
    for path in files:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue  # a torn last line of a live file
                if isinstance(rec, dict) and since <= _epoch(rec.get("ts")) <= until:
                    yield rec


def _epoch(ts: object) -> float:
    try:
        return datetime.fromisoformat(str(ts)).timestamp()
    except ValueError:
        return float("nan")  # compares false: outside every window


def _row(rec: dict[str, Any]) -> dict[str, Any] | None:
    """The training row of a captured 2xx exchange; None for a failed or empty one."""
    status, prompt, completion = rec.get("status"), rec.get("prompt"), rec.get("completion")
    if not (isinstance(status, int) and 200 <= status < 300):
        return None
    if not isinstance(prompt, str) or not isinstance(completion, str) or rec.get("truncated"):
        return None
    messages = rec.get("messages")
    row: dict[str, Any] = {
        "prompt": prompt,
        "messages": json.dumps(messages, sort_keys=True) if isinstance(messages, list) else "",
        "completion": completion,
        "n_seen": 1,
        "ts": _epoch(rec.get("ts")),
        "model_version": str(rec.get("model_version") or ""),
        "request_id": str(rec.get("request_id") or ""),
    }
    for key, value in rec.items():
        if key in FEEDBACK_KEYS or key.startswith(tuple(f"{k}_" for k in FEEDBACK_KEYS)):
            row[key] = json.dumps(value, sort_keys=True)
    return row


def _user_turns(row: dict[str, Any]) -> set[str]:
    turns = {normalize(row["prompt"])}
    if row.get("messages"):
        for m in json.loads(row["messages"]):
            if isinstance(m, dict) and m.get("role") == "user":
                turns.add(normalize(str(m.get("content", ""))))
    return turns


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    extra = sorted({k for r in rows for k in r} - set(BASE_COLUMNS))
    return BASE_COLUMNS + extra


def _deduplicate(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (conversation, completion); a copy with feedback wins, then the latest."""
    if frame.empty:
        return frame
    feedback = [c for c in frame.columns if c not in BASE_COLUMNS]
    key = frame["messages"].where(frame["messages"] != "", frame["prompt"])
    frame = frame.assign(_key=key, _has_feedback=frame[feedback].notna().any(axis=1)
                         if feedback else False)  # fmt: skip
    seen = frame.groupby(["_key", "completion"])["n_seen"].transform("sum")
    frame = frame.assign(n_seen=seen).sort_values(
        ["_has_feedback", "ts", "request_id"], ascending=[False, False, True]
    )
    kept = frame.drop_duplicates(["_key", "completion"], keep="first")
    return kept.drop(columns=["_key", "_has_feedback"]).reset_index(drop=True)
