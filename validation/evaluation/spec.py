"""`ReleaseSpec.evaluation`: which set judges the release, with which scorers and rules.

    evaluation:
      path: eval/support.jsonl          # or dataset: support-qa (an MLflow evaluation dataset)
      scorers:
        - {kind: normalized}
        - {kind: json_schema}
        - {kind: numeric, tolerance: 0.01}
      threshold: 0.8                    # absolute floor on the candidate's pass rate
      margin: 0.05                      # non-inferiority margin vs the champion

A row passes when it passes every scorer; the gate compares pass rates (and every
fractional scorer's mean) of candidate and champion on the same rows, paired.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCORER_KINDS = ("exact", "normalized", "contains", "regex", "numeric", "json_valid",
                "json_schema", "fields", "length", "semantic", "judge")  # fmt: skip
JUDGE_VARIABLES = ("{{ inputs }}", "{{ outputs }}", "{{ expectations }}")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class JudgeSpec(_Spec):
    """An LLM judge (MLflow `make_judge`) on any OpenAI-compatible chat endpoint."""

    endpoint: str = Field(
        pattern=r"^https?://[^\s/]+(/\S*)?$", description="The endpoint's base URL, up to "
        "and including /v1 (e.g. http://judge:8000/v1); it must serve /chat/completions.",
    )  # fmt: skip
    model: str = Field(min_length=1, description="The judge's model name at that endpoint.")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name of the environment "
        "variable holding the endpoint's API key (never the key itself: specs are logged).",
    )  # fmt: skip
    instructions: str = Field(
        "Does the answer in {{ outputs }} say what the reference answer in {{ expectations }} "
        "says, for the question in {{ inputs }}? Answer yes or no.",
        min_length=1, description="What the judge decides (yes/no), with at least one of "
        "{{ inputs }}, {{ outputs }}, {{ expectations }}.",
    )  # fmt: skip
    max_tokens: int = Field(128, ge=1, description="Most tokens the judge may answer with.")
    timeout_s: float = Field(
        30.0, gt=0, description="Timeout of validate's probe requests (MLflow's own judge "
        "calls take MLFLOW_GATEWAY_ROUTE_TIMEOUT_SECONDS).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _variables(self) -> JudgeSpec:
        if not any(v in self.instructions for v in JUDGE_VARIABLES):
            raise ValueError(
                f"judge.instructions must name what it judges: at least one of "
                f"{', '.join(JUDGE_VARIABLES)}"
            )
        return self


class ScorerSpec(_Spec):
    """One scorer: its kind, its pass rule and tolerance."""

    kind: str = Field(
        description="exact | normalized (case, whitespace, punctuation) | contains (facts or "
        "expected_response) | regex | numeric | json_valid | json_schema | fields | length | "
        "semantic (embedding cosine to expected_response; set pass_at, e.g. 0.8) | judge (an "
        "LLM judge's yes/no; set `judge`). "
        "An unknown kind is refused at validate (UnknownScorerError)."
    )
    name: str | None = Field(None, min_length=1, description="Assessment name (default: kind).")
    pass_at: float = Field(
        1.0, gt=0, le=1, description="A row passes this scorer when its value (0..1) is at "
        "least this (fields: share of fields right; contains: share of facts found).",
    )  # fmt: skip
    tolerance: float = Field(
        0.0, ge=0, description="numeric: absolute tolerance when a row's expectations give none."
    )
    pattern: str | None = Field(
        None, min_length=1, description="regex: one pattern for every row (else the row's "
        "expectations.regex)."
    )  # fmt: skip
    json_schema: dict[str, Any] | None = Field(
        None, description="json_schema: one schema for every row (else expectations.json_schema)."
    )
    fields: list[str] | None = Field(
        None, description="fields: compare only these keys (default: every expected field)."
    )
    min_length: int | None = Field(None, ge=0, description="length: fewest units allowed.")
    max_length: int | None = Field(None, ge=0, description="length: most units allowed.")
    unit: Literal["chars", "words"] = Field("chars", description="length: chars or words.")
    judge: JudgeSpec | None = Field(None, description="judge: the endpoint and instructions.")

    @property
    def label(self) -> str:
        return self.name or self.kind

    @model_validator(mode="after")
    def _length(self) -> ScorerSpec:
        if self.kind == "length" and self.min_length is None and self.max_length is None:
            raise ValueError("a length scorer needs min_length and/or max_length")
        if (self.kind == "judge") != (self.judge is not None):
            raise ValueError(
                "a judge scorer needs `judge: {endpoint, model, ...}`"
                if self.kind == "judge"
                else f"`judge` is for kind judge, not {self.kind!r}"
            )
        if self.kind == "semantic" and self.pass_at >= 1.0:
            raise ValueError(
                "a semantic scorer needs pass_at below 1 (the cosine similarity that counts as "
                "the same meaning, e.g. 0.8): at 1.0 only identical embeddings would pass"
            )
        return self


class EvaluationSpec(_Spec):
    """The evaluation set the release owns and how candidate and champion are judged on it."""

    path: str | None = Field(
        None, min_length=1, description="A JSONL, CSV or Parquet file of rows (inputs, "
        "expectations, tags); the release registers it as an MLflow evaluation dataset.",
    )  # fmt: skip
    dataset: str | None = Field(
        None, min_length=1, description="An MLflow evaluation dataset, by name (instead of path)."
    )
    name: str | None = Field(
        None, min_length=1, description="Name to register a file under (default: file stem)."
    )
    scorers: list[ScorerSpec] = Field(
        default_factory=lambda: [ScorerSpec(kind="normalized")],
        description="Scorers; a row passes when it passes all of them.",
    )
    threshold: float = Field(
        0.8, ge=0, le=1, description="Absolute floor: the candidate's pass rate must reach it."
    )
    margin: float = Field(
        0.05, gt=0, le=1, description="Non-inferiority margin: the candidate may be at most "
        "this much worse than the champion (the CI's lower bound must stay above -margin).",
    )  # fmt: skip
    alpha: float = Field(
        0.05, gt=0, lt=0.5, description="One-sided error rate of the non-inferiority test."
    )
    power: float = Field(
        0.8, gt=0.5, lt=1, description="Power at no true difference that the row count must "
        "give for `margin`; fewer rows are refused at validate (TooFewRowsError).",
    )  # fmt: skip
    assumed_discordance: float = Field(
        0.05, gt=0, le=1, description="Share of rows on which candidate and champion are "
        "expected to disagree; sizes the set for `power` (a larger share needs more rows).",
    )  # fmt: skip
    allow_candidate_golden: bool = Field(
        False, description="Use a golden.jsonl inside the candidate's model directory when no "
        "path/dataset is given. The record then says the candidate supplied its own set.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _source(self) -> EvaluationSpec:
        if self.path is not None and self.dataset is not None:
            raise ValueError("evaluation: give `path` or `dataset`, not both")
        if self.path is None and self.dataset is None and not self.allow_candidate_golden:
            raise ValueError(
                "evaluation needs `path` (a JSONL/CSV/Parquet file) or `dataset` (an MLflow "
                "evaluation dataset name); a candidate's own golden.jsonl counts only with "
                "allow_candidate_golden: true"
            )
        if not self.scorers:
            raise ValueError("evaluation.scorers is empty: name at least one scorer")
        return self
