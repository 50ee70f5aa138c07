"""Which rows judge a release: the spec's file or MLflow dataset, never the candidate's own
files unless the spec says so.

    prepared = prepare(spec.evaluation, model_dir, tracking_uri)
    prepared.evalset, prepared.tags       # tags pin the digest in the release record

Order (each a named error before anything is registered or deployed): the set exists, is
not empty, every row is well formed, every scorer is known and has the expectations it
needs, and the set has the rows the non-inferiority margin needs. Only then is a file
registered as an MLflow evaluation dataset (`register`, when a tracking store is given).

A `golden.jsonl` in the candidate's model directory is read only when the spec gives no
path/dataset and sets `allow_candidate_golden: true`; the tags then say
`canaryflow.eval_candidate_supplied=true`, so the record shows the candidate chose its rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import EvaluationSetMissingError
from validation.evaluation.mlflow_scoring import (
    DIGEST_TAG,
    dataset_name,
    load_dataset,
    register_dataset,
)
from validation.evaluation.paired import check_rows
from validation.evaluation.rows import EvaluationSet, read_file
from validation.evaluation.scorers import check_scorers
from validation.evaluation.spec import EvaluationSpec

CANDIDATE_GOLDEN = "golden.jsonl"


@dataclass(frozen=True)
class PreparedSet:
    """The release's rows with the tags that pin them in the record."""

    evalset: EvaluationSet
    tags: dict[str, str] = field(default_factory=dict)
    candidate_supplied: bool = False


def read_set(spec: EvaluationSpec | None, model_dir: Path | None, tracking_uri: str | None
             ) -> tuple[EvaluationSet, bool]:  # fmt: skip
    """(rows, supplied by the candidate?) from the spec's source."""
    if spec is None:
        raise EvaluationSetMissingError(
            "the release names no evaluation set: set evaluation.path (a JSONL/CSV/Parquet file "
            "of rows) or evaluation.dataset (an MLflow evaluation dataset) in the release spec"
        )
    if spec.path is not None:
        return read_file(Path(spec.path).expanduser(), spec.name), False
    if spec.dataset is not None:
        if tracking_uri is None:
            raise EvaluationSetMissingError(
                f"evaluation.dataset {spec.dataset!r} needs an MLflow tracking store; "
                f"configure one (CANARYFLOW_MLFLOW_URI) or give evaluation.path"
            )
        return load_dataset(spec.dataset, tracking_uri), False
    golden = (model_dir or Path(".")) / CANDIDATE_GOLDEN
    return read_file(golden, spec.name or "candidate-golden"), True


def prepare(
    spec: EvaluationSpec | None, model_dir: Path | None, tracking_uri: str | None
) -> PreparedSet:
    """Read and check the set (named errors); registers nothing."""
    evalset, supplied = read_set(spec, model_dir, tracking_uri)
    assert spec is not None
    check_scorers(spec.scorers, evalset.rows)
    check_rows(len(evalset.rows), spec.margin, spec.alpha, spec.power, spec.assumed_discordance)
    tags = {DIGEST_TAG: evalset.digest, "canaryflow.eval_name": evalset.name,
            "canaryflow.eval_source": evalset.source,
            "canaryflow.eval_rows": str(len(evalset.rows)),
            "canaryflow.eval_candidate_supplied": str(supplied).lower()}  # fmt: skip
    if spec.dataset is not None:
        tags["canaryflow.eval_dataset"] = spec.dataset
    return PreparedSet(evalset=evalset, tags=tags, candidate_supplied=supplied)


def register(prepared: PreparedSet, spec: EvaluationSpec | None, tracking_uri: str) -> PreparedSet:
    """A file's rows registered as an MLflow evaluation dataset (named by digest); a set that
    already is a dataset is left as it is."""
    if spec is not None and spec.dataset is not None:
        return prepared
    dataset_id = register_dataset(prepared.evalset, tracking_uri)
    tags = {**prepared.tags, "canaryflow.eval_dataset": dataset_name(prepared.evalset),
            "canaryflow.eval_dataset_id": dataset_id}  # fmt: skip
    return PreparedSet(prepared.evalset, tags, prepared.candidate_supplied)
