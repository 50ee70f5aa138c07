"""The release's evaluation set: rows, digest, scorers, paired comparison, MLflow datasets.

    from validation.evaluation import EvalRow, EvaluationSet, make_row_scorer
    evalset = read_file(Path("eval.jsonl"))            # rows.py: named errors per row/column
    score = make_row_scorer(spec.evaluation)           # (row, output) -> 1.0 | 0.0
    prepare(spec.evaluation, model_dir, tracking_uri)  # source.py: checks, then registers
    evaluate_offline(...)                              # gate.py: floor + paired non-inferiority

Modules: spec (the ReleaseSpec.evaluation model), rows (reading, digest), scorers (code
scorers, make_row_scorer), mlflow_scoring (datasets, mlflow.genai.evaluate), paired
(McNemar, Wilcoxon, bootstrap, rows needed), source (which rows judge a release), gate.
Only rows, scorers, spec and paired import here: mlflow loads in the functions that use it.
"""

from validation.evaluation.rows import EvalRow, EvaluationSet, from_records, read_file
from validation.evaluation.scorers import Score, make_row_scorer, normalize, score_row
from validation.evaluation.spec import EvaluationSpec, ScorerSpec

RowScore = float
"""A row's score in [0, 1]; 1.0 = pass for pass/fail scorers."""

__all__ = ["EvalRow", "EvaluationSet", "EvaluationSpec", "RowScore", "Score", "ScorerSpec",
           "from_records", "make_row_scorer", "normalize", "read_file", "score_row"]  # fmt: skip
