"""Offline scoring cost: a model's outputs on the demo's evaluation set, scored by
`mlflow.genai.evaluate` the first time and read back from that run the next time.

    python -m bench --only offline_scoring [--quick]

Every release scores the champion on the release's set, and an identical candidate scores
exactly what an earlier run scored. validation/evaluation/mlflow_scoring.MlflowScoring keys
each evaluation run by (set digest, scorers and their code, every output); this measures
what that saves: a fresh sqlite store per repeat, the demo model's greedy answers
(transformers, timed apart), then `score` twice on the same outputs.
"""

from __future__ import annotations

import json
import time

from bench.common import Context, Row, median, num, spread
from tests.fixtures.models import trained

NAME = "offline_scoring"
METHOD = (
    "measured: MlflowScoring.score on the demo model's greedy answers to the demo's held-out "
    "rows (exact scorer), fresh sqlite store per repeat: first scoring (mlflow.genai.evaluate, "
    "traces and assessments) vs the same outputs again (the content-addressed run read back)."
)


def run(ctx: Context) -> None:
    from infra.demo.evaluation import demo_rows
    from infra.local_generator import TransformersGenerator
    from validation.evaluation import read_file
    from validation.evaluation.mlflow_scoring import MlflowScoring, register_dataset
    from validation.evaluation.spec import ScorerSpec

    n = ctx.pick(100, 500)
    path = ctx.work / "offline-scoring.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in demo_rows()[:n]), encoding="utf-8")
    evalset = read_file(path, "offline-scoring")
    start = time.monotonic()
    outputs = TransformersGenerator(trained(), max_new_tokens=8).complete(
        [r.prompt for r in evalset.rows]
    )
    generate_s = time.monotonic() - start
    scorers = [ScorerSpec(kind="exact")]
    fresh: list[float] = []
    again: list[float] = []
    for i in range(ctx.repeats(3)):
        uri = f"sqlite:///{ctx.work / f'scoring-{i}.db'}"
        register_dataset(evalset, uri)
        scoring = MlflowScoring(uri)
        t0 = time.monotonic()
        first, first_run = scoring.score(evalset, scorers, outputs, "candidate", {})
        t1 = time.monotonic()
        second, second_run = scoring.score(evalset, scorers, outputs, "champion", {})
        t2 = time.monotonic()
        assert (second, second_run) == (first, first_run), "the cached scores differ"
        fresh.append(t1 - t0)
        again.append(t2 - t1)
        ctx.note(f"repeat {i}: fresh {t1 - t0:.1f} s, again {t2 - t1:.3f} s")
    ratio = median(fresh) / max(median(again), 1e-9)
    ctx.emit(
        Row(
            NAME,
            f"score one model's outputs on {n} rows, scored before",
            spread(again, "s"),
            f"first scoring {spread(fresh, 's')}",
            f"{num(ratio)}× faster",
            "≥ 10×",
            "yes" if ratio >= 10 else "**no**",
            f"generating the {n} answers (transformers, greedy): {generate_s:.1f} s; "
            f"{n / median(fresh):.1f} rows/s scored fresh",
        )
    )
