"""The evaluation set in MLflow: registered as a genai evaluation dataset, scored with
`mlflow.genai.evaluate`, per-row values and rationales read back from its assessments.

    ds_id = register_dataset(evalset, tracking_uri)           # idempotent on content
    evalset = load_dataset("support-qa", tracking_uri)        # a dataset by name
    scored = MlflowScoring(tracking_uri).score(evalset, scorers, outputs, "candidate", tags)

MLflow's evaluation datasets are not versioned outside Databricks, so a file is registered
under `<name>-<12 hex of its digest>` and tagged with the full digest: an edited file becomes
a new dataset and the one a past release was judged on stays as it was.

Scores are content-addressed: a run is tagged with `scores_key(evalset, scorers, outputs)`
(the set's digest, the scorer specs, the scorers' code and MLflow's version, every output)
and carries the per-row scores as `canaryflow_row_scores.json`. Scoring the same outputs on
the same rows again (the champion in every release, an identical candidate) reads that run
back instead of running `mlflow.genai.evaluate` again: 500 rows took 63 s per model here,
the lookup under a second. The code scorers are pure functions, so a reused score is the
score that would have been computed; the release record names the run it came from.

Heavy imports (mlflow) happen inside the functions.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from infra.errors import EvaluationSetMissingError
from infra.tracking import experiment_id
from validation.evaluation.judge import mlflow_judge, verdict_value
from validation.evaluation.rows import EvalRow, EvaluationSet, from_records
from validation.evaluation.scorers import Score, score_row
from validation.evaluation.spec import ScorerSpec

EXPERIMENT = "canaryflow-evaluation"
DIGEST_TAG = "canaryflow.eval_digest"
SCORES_KEY_TAG = "canaryflow.eval_scores_key"
SCORES_ARTIFACT = "canaryflow_row_scores.json"
log = logging.getLogger("canaryflow.evaluation")
RowScores = dict[str, dict[str, Score]]
"""row_id -> scorer label -> Score."""


class Scoring(Protocol):
    """Scores outputs of one model on the rows of a set; returns per-row scores and a run id
    (None when nothing was logged)."""

    def score(
        self,
        evalset: EvaluationSet,
        scorers: Sequence[ScorerSpec],
        outputs: Sequence[str],
        role: str,
        tags: Mapping[str, str],
    ) -> tuple[RowScores, str | None]: ...


class LocalScoring:
    """The same scorer functions, in process, logging nothing (unit tests, no tracking store)."""

    def score(
        self,
        evalset: EvaluationSet,
        scorers: Sequence[ScorerSpec],
        outputs: Sequence[str],
        role: str,
        tags: Mapping[str, str],
    ) -> tuple[RowScores, str | None]:
        return {r.row_id: {s.label: score_row(s, r, out) for s in scorers}
                for r, out in zip(evalset.rows, outputs, strict=True)}, None  # fmt: skip


def dataset_name(evalset: EvaluationSet) -> str:
    return f"{evalset.name}-{evalset.digest.removeprefix('sha256:')[:12]}"


def _mlflow(tracking_uri: str) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow


def _experiment_id(mlflow: Any) -> str:
    """The evaluation experiment; its artifacts (traces) next to a sqlite store, never in
    the current directory."""
    return experiment_id(mlflow, EXPERIMENT, str(mlflow.get_tracking_uri()))


def register_dataset(evalset: EvaluationSet, tracking_uri: str, name: str | None = None) -> str:
    """Register the rows as an MLflow evaluation dataset (a no-op when one with this name and
    digest exists); its dataset id. `name` overrides the digest-suffixed default."""
    mlflow = _mlflow(tracking_uri)
    from mlflow.genai import datasets

    name = name or dataset_name(evalset)
    existing = mlflow.MlflowClient().search_datasets(filter_string=f'name = "{name}"')
    for ds in existing:
        if (ds.tags or {}).get(DIGEST_TAG) == evalset.digest:
            return str(ds.dataset_id)
    if existing:
        raise EvaluationSetMissingError(
            f"an MLflow evaluation dataset {name!r} exists with other content (digest "
            f"{(existing[0].tags or {}).get(DIGEST_TAG)}, not {evalset.digest}); datasets are "
            f"not versioned: register the new rows under a new name"
        )
    ds = datasets.create_dataset(name=name, experiment_id=[_experiment_id(mlflow)],
                                 tags={DIGEST_TAG: evalset.digest,
                                       "canaryflow.eval_source": evalset.source})  # fmt: skip
    ds.merge_records([r.record() for r in evalset.rows])
    return str(ds.dataset_id)


def load_dataset(name: str, tracking_uri: str) -> EvaluationSet:
    """The rows of the MLflow evaluation dataset `name` (EvaluationSetMissingError if none)."""
    _mlflow(tracking_uri)
    from mlflow.exceptions import MlflowException
    from mlflow.genai import datasets

    try:
        ds = datasets.get_dataset(name=name)
    except MlflowException as exc:
        raise EvaluationSetMissingError(
            f"no MLflow evaluation dataset {name!r} in {tracking_uri} ({exc.message}); register "
            f"it first (mlflow.genai.datasets.create_dataset) or give evaluation.path"
        ) from exc
    frame = ds.to_df()
    records = [{k: row.get(k) for k in ("inputs", "expectations", "tags")}
               for row in frame.to_dict(orient="records")]  # fmt: skip
    for rec in records:  # MLflow adds its own tags (mlflow.user): not part of the content
        rec["tags"] = {k: v for k, v in (rec["tags"] or {}).items() if not k.startswith("mlflow.")}
    return from_records(records, name=name, source=f"mlflow-dataset:{name}")


SQLITE_EVAL_WORKERS = 2


class MlflowScoring:
    """`mlflow.genai.evaluate` on precomputed outputs, one run per model (role) and release."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri

    def score(
        self,
        evalset: EvaluationSet,
        scorers: Sequence[ScorerSpec],
        outputs: Sequence[str],
        role: str,
        tags: Mapping[str, str],
    ) -> tuple[RowScores, str | None]:
        mlflow = _mlflow(self.tracking_uri)
        if self.tracking_uri.startswith("sqlite:"):
            # The harness's default 10 threads exhaust SQLAlchemy's pool on one sqlite file:
            # traces and assessments were dropped after 30 s timeouts (500 rows: 18 min).
            # Two writers: 100 rows in 13 s here, every assessment logged.
            os.environ.setdefault("MLFLOW_GENAI_EVAL_MAX_WORKERS", str(SQLITE_EVAL_WORKERS))
        key = scores_key(evalset, scorers, outputs)
        experiment = _experiment_id(mlflow)
        reused = _scored_before(mlflow, experiment, key, evalset, scorers)
        if reused is not None:
            log.info("%s: these outputs were scored on these rows before: run %s reused",
                     role, reused[1])  # fmt: skip
            return reused
        data = [_eval_record(r, out) for r, out in zip(evalset.rows, outputs, strict=True)]
        mlflow.set_experiment(experiment_id=experiment)
        run_tags = {**tags, DIGEST_TAG: evalset.digest, "canaryflow.eval_role": role}
        with mlflow.start_run(run_name=f"evaluation-{role}", tags=run_tags) as run:
            result = mlflow.genai.evaluate(data=data, scorers=mlflow_scorers(scorers))
            scores = read_scores(result.result_df, scorers)
            mlflow.log_dict(_scores_json(scores), SCORES_ARTIFACT)
            mlflow.set_tag(SCORES_KEY_TAG, key)  # last: a run with the key has its scores
        return scores, str(run.info.run_id)


def scores_key(
    evalset: EvaluationSet, scorers: Sequence[ScorerSpec], outputs: Sequence[str]
) -> str:
    """What determines the per-row scores: rows (digest), scorers (spec, code, MLflow's
    version for its built-ins) and every output, in row order."""
    h = hashlib.sha256()
    for part in (evalset.digest, json.dumps([s.model_dump(mode="json") for s in scorers],
                                            sort_keys=True),
                 _scorers_version(), json.dumps(list(outputs))):  # fmt: skip
        h.update(part.encode("utf-8") + b"\0")
    return "sha256:" + h.hexdigest()


@functools.cache
def _scorers_version() -> str:
    """The scorers' code, the embedding model's package and MLflow's version (its built-in
    scorers): read once a process."""
    import mlflow

    from validation.evaluation.semantic import MODEL_PACKAGE

    code = b"".join(Path(__file__).with_name(f).read_bytes()
                    for f in ("scorers.py", "semantic.py", "judge.py"))  # fmt: skip
    embedder = importlib.metadata.version(MODEL_PACKAGE.replace("_", "-"))
    return f"{hashlib.sha256(code).hexdigest()} {embedder} mlflow {mlflow.__version__}"


def _scores_json(scores: RowScores) -> dict[str, Any]:
    return {row: {label: [s.value, s.rationale] for label, s in by.items()}
            for row, by in scores.items()}  # fmt: skip


def _scored_before(
    mlflow: Any, experiment: str, key: str, evalset: EvaluationSet, scorers: Sequence[ScorerSpec]
) -> tuple[RowScores, str] | None:
    """The scores of a finished run with this key, when it holds one for every row and
    scorer; None otherwise (then the outputs are scored afresh)."""
    runs = mlflow.search_runs(
        experiment_ids=[experiment], output_format="list", max_results=5,
        filter_string=f"tags.`{SCORES_KEY_TAG}` = '{key}' and attributes.status = 'FINISHED'",
    )  # fmt: skip
    for run in runs:
        try:
            raw = mlflow.artifacts.load_dict(f"{run.info.artifact_uri}/{SCORES_ARTIFACT}")
            scores = {row: {label: Score(float(v[0]), str(v[1])) for label, v in by.items()}
                      for row, by in raw.items()}  # fmt: skip
        except Exception as exc:  # an unreadable artifact only costs a fresh scoring
            log.warning("run %s: its scores could not be read back (%s)", run.info.run_id, exc)
            continue
        labels = {s.label for s in scorers}
        if all(labels <= set(scores.get(r.row_id, {})) for r in evalset.rows):
            return scores, str(run.info.run_id)
    return None


def _eval_record(row: EvalRow, output: str) -> dict[str, Any]:
    return {**row.record(), "outputs": output}


def mlflow_scorers(specs: Sequence[ScorerSpec]) -> list[Any]:
    """One MLflow scorer per spec: the built-in RegexMatch / ResponseLength where they fit,
    MLflow's own LLM judge for `judge`, a custom `@scorer` around the same function otherwise."""
    from mlflow.genai.scorers import RegexMatch, ResponseLength

    out: list[Any] = []
    for spec in specs:
        if spec.kind == "judge":
            out.append(mlflow_judge(spec))
        elif spec.kind == "regex" and spec.pattern:
            out.append(RegexMatch(name=spec.label, pattern=spec.pattern))
        elif spec.kind == "length":
            out.append(ResponseLength(name=spec.label, min_length=spec.min_length,
                                      max_length=spec.max_length, unit=spec.unit))  # fmt: skip
        else:
            out.append(_custom(spec))
    return out


def _custom(spec: ScorerSpec) -> Any:
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    def run(inputs: Any, outputs: Any, expectations: Any) -> Feedback:
        row = EvalRow(row_id="", messages=tuple(inputs["messages"]),
                      expectations=dict(expectations or {}))  # fmt: skip
        got = score_row(spec, row, outputs if isinstance(outputs, str) else str(outputs))
        return Feedback(value=got.value, rationale=got.rationale)

    return scorer(run, name=spec.label, description=f"canaryflow {spec.kind} scorer")


def read_scores(frame: Any, specs: Sequence[ScorerSpec]) -> RowScores:
    """Per-row values and rationales from the assessments in `EvaluationResult.result_df`
    (built-ins' yes/no become 1.0/0.0; a scorer that raised scores 0 with its error)."""
    scores: RowScores = {}
    for rec in frame.to_dict(orient="records"):
        row_id = str((rec.get("tags") or {}).get("row_id", ""))
        found = {a.get("assessment_name"): a for a in rec.get("assessments") or []
                 if "feedback" in a}  # fmt: skip
        scores[row_id] = {s.label: _score(found.get(s.label)) for s in specs}
        for spec in specs:  # a broken judgement is an error, never a silent 0
            if spec.kind == "judge":
                got = found.get(spec.label) or {}
                value = (got.get("feedback") or {}).get("value")
                verdict_value(spec, value, scores[row_id][spec.label].rationale)
    return scores


def _score(assessment: Mapping[str, Any] | None) -> Score:
    if assessment is None:
        return Score(0.0, "no assessment recorded")
    feedback = assessment.get("feedback") or {}
    why = str(assessment.get("rationale") or feedback.get("error") or "")
    return Score(_value(feedback.get("value")), why)


def _value(value: Any) -> float:
    if isinstance(value, str):
        return 1.0 if value.lower() in ("yes", "true") else 0.0
    if value is None:
        return 0.0
    return float(value)
