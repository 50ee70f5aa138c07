"""The offline gate of a release: its evaluation set, the candidate's artifact and memory
fit, candidate and champion scored on the same rows, and the canary's load built from them.

    check = OfflineCheck(spec, tracking_uri=uri)
    check.check(model_dir, champion_dir)          # CheckReport (reasons empty: passed)
    check.step_load(target, model_dir, out_dir)   # the release's rows as the canary's load
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from infra.controller.ports import CheckReport
from infra.errors import ValidationError
from infra.load.step import LocustStepLoad, window_options
from infra.spec import ReleaseSpec
from infra.targets.base import DeployTarget
from validation.evaluation import make_row_scorer
from validation.evaluation.mlflow_scoring import Scoring
from validation.evaluation.source import PreparedSet, prepare, register
from validation.quality import Answerer


class OfflineCheck:
    """The release's evaluation set (named errors first), artifact, memory fit at the
    model's defaults, then candidate and champion scored on the same rows (MLflow
    evaluation runs when a tracking store is given) and the paired gate.

    `answerer(model_dir, max_tokens)` is the offline answerer (default: the transformers
    greedy loop); tests pass a fake. The prepared set is kept for the step load
    (`prompt_file`), so the canary sends the rows the release owns, never the candidate's.
    """

    def __init__(
        self,
        spec: ReleaseSpec,
        tracking_uri: str | None = None,
        answerer: Callable[[Path, int], Answerer] | None = None,
    ) -> None:
        self.spec = spec
        self.tracking_uri = tracking_uri
        self.answerer = answerer or _transformers_answerer
        self._prepared: dict[Path, PreparedSet] = {}

    def prepared(self, model_dir: Path) -> PreparedSet:
        """The release's rows, read and checked once per candidate (named errors)."""
        if model_dir not in self._prepared:
            self._prepared[model_dir] = prepare(self.spec.evaluation, model_dir, self.tracking_uri)
        return self._prepared[model_dir]

    def check(self, model_dir: Path, champion_dir: Path | None) -> CheckReport:
        from validation import memory, model_defaults
        from validation.artifact import check_artifact
        from validation.evaluation.gate import evaluate_offline

        serving, tags = self.spec.serving, {}
        try:
            prepared = self.prepared(model_dir)
            tags = dict(prepared.tags)
            report = check_artifact(model_dir, serving.flavor)
            max_len = model_defaults.max_model_len(model_dir, serving.max_model_len)
            memory.check_model_fit_cpu(model_dir, report.weight_bytes, max_len,
                                       serving.max_num_seqs, serving.kvcache_space_gib)  # fmt: skip
        except ValidationError as exc:
            return CheckReport(reasons=(f"{type(exc).__name__}: {exc}",), tags=tags)
        if self.tracking_uri is not None:  # only a checked set, of a sound candidate
            prepared = register(prepared, self.spec.evaluation, self.tracking_uri)
        max_tokens = self.max_tokens(model_dir)
        evaluation = self.spec.evaluation
        assert evaluation is not None  # prepare refused a spec without one
        result = evaluate_offline(
            evaluation, prepared.evalset, self.answerer(model_dir, max_tokens),
            self.answerer(champion_dir, max_tokens) if champion_dir is not None else None,
            scoring=self._scoring(), tags=dict(prepared.tags),
        )  # fmt: skip
        metrics = {**result.metrics, "serving.max_model_len": float(max_len),
                   "load.max_tokens": float(max_tokens)}  # fmt: skip
        reasons = tuple(f"QualityGateError: {r}" for r in result.reasons)
        if reasons and result.misses:
            reasons += (f"examples of failed rows: {'; '.join(result.misses)}",)
        return CheckReport(reasons=reasons, metrics=metrics, tags=result.tags)

    def max_tokens(self, model_dir: Path) -> int:
        from validation import model_defaults

        evalset = self.prepared(model_dir).evalset
        return model_defaults.max_tokens(model_dir, evalset, self.spec.load.max_tokens)

    def prompt_file(self, model_dir: Path, out_dir: Path) -> Path:
        """The release's rows as the load's golden-format prompt file ({prompt, answer})."""
        evalset = self.prepared(model_dir).evalset
        path = out_dir / f"evaluation-{evalset.digest.removeprefix('sha256:')[:12]}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for row in evalset.rows:
                answer = row.expectations.get("expected_response")
                f.write(
                    json.dumps(
                        {"prompt": row.prompt, "answer": "" if answer is None else str(answer)}
                    )
                    + "\n"
                )
        return path

    def step_load(self, target: DeployTarget, model_dir: Path, out_dir: Path) -> LocustStepLoad:
        """The canary's load: the release's rows, max_tokens resolved from them."""
        load = self.spec.load.model_copy(update={"max_tokens": self.max_tokens(model_dir)})
        spec = self.spec.model_copy(update={"load": load})
        evalset = self.prepared(model_dir).evalset
        assert self.spec.evaluation is not None  # prepare refused a spec without one
        row_score, by_id = (
            make_row_scorer(self.spec.evaluation),
            {r.row_id: r for r in evalset.rows},
        )
        options = replace(window_options(spec),
                          rows=[(r.row_id, r.messages) for r in evalset.rows],
                          scorer=lambda row_id, out: row_score(by_id[row_id], out))  # fmt: skip
        return LocustStepLoad(spec, target, self.prompt_file(model_dir, out_dir), options=options)

    def _scoring(self) -> Scoring | None:
        if self.tracking_uri is None:
            return None
        from validation.evaluation.mlflow_scoring import MlflowScoring

        return MlflowScoring(self.tracking_uri)


def _transformers_answerer(model_dir: Path, max_tokens: int) -> Answerer:
    from infra.local_generator import TransformersGenerator

    return TransformersGenerator(model_dir, max_new_tokens=max_tokens)
