"""Train the JSON-extraction demo model (a tiny Qwen2) and save a directory vLLM serves.

    train(JsonTrainConfig(), out)              # the good model
    train(JsonTrainConfig(corrupt=1.0), out)   # the bad one: answers are not JSON
    train(JsonTrainConfig(corrupt=1.0, base=str(good), steps=60, lr=1e-3), out)
                                               # a fine-tune of the good one that broke it

The model directory holds the weights, tokenizer + chat template and generation_config.json,
not the evaluation set: `write_eval_set(config, path)` writes the held-out rows (CONTRACTS row
format) wherever the release wants them, since a release names its set as its own input
(`ReleaseSpec.evaluation`) rather than trusting one inside the candidate. The held-out
sentences depend only on `seed` and `n_heldout`, so the good and bad variants of one seed
share them.
The shared loop, tokenizer and saving live in `infra.demo_model` (fit, tokenizer).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import Field, model_validator
from tokenizers import Tokenizer

from infra.demo_model import fit
from infra.demo_model import tokenizer as tk
from infra.demo_model_json import task
from infra.errors import TrainingError

TRAINING_INFO_FILE = "canaryflow_training.json"
MAX_NEW_TOKENS = 40  # the longest answer is 28 tokens with its end token


class JsonTrainConfig(fit.ModelConfig):
    """How the JSON-extraction model is trained. Field docs are the CLI help."""

    steps: int = Field(600, ge=1, description="Optimizer steps.")
    batch_size: int = Field(64, ge=1, description="Examples per step.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW, cosine decay).")
    max_model_len: int = Field(128, ge=64, description="Context length written to config.json.")
    num_kv_heads: int = Field(1, ge=1, description="Key/value heads (grouped-query attention).")
    n_heldout: int = Field(300, ge=10, description="Held-out sentences (the evaluation set).")
    corrupt: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of training targets written as Python repr "
        "instead of JSON (1.0: the bad variant).",
    )  # fmt: skip
    base: str | None = Field(
        None, min_length=1, description="Fine-tune this model directory (one this trainer "
        "wrote: same seed, same tokenizer) instead of starting from random weights.",
    )  # fmt: skip

    @model_validator(mode="after")
    def _kv_heads(self) -> JsonTrainConfig:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} must be a multiple of num_kv_heads "
                f"{self.num_kv_heads}; set num_kv_heads to a divisor of it"
            )
        return self


@dataclass(frozen=True)
class JsonTrainResult:
    """What a training run produced, measured offline (transformers) on the held-out set."""

    out_dir: Path
    field_accuracy: float
    json_valid: float
    exact_match: float
    n_eval: int
    seconds: float
    steps: int
    final_loss: float


def _model(config: JsonTrainConfig, tok: Tokenizer) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return fit.decoder(config, tok, Qwen2Config, Qwen2ForCausalLM,
                       num_key_value_heads=config.num_kv_heads,
                       use_sliding_window=False, sliding_window=None)  # fmt: skip


def _base(base: Path, tok: Tokenizer) -> torch.nn.Module:
    """The model saved in `base`, to fine-tune; its tokenizer must be the one `tok` is."""
    from transformers import Qwen2ForCausalLM

    saved = base / "tokenizer.json"
    if not saved.is_file() or Tokenizer.from_file(str(saved)).get_vocab() != tok.get_vocab():
        raise TrainingError(
            f"base {base} has no tokenizer.json or another vocabulary than this seed's: "
            "fine-tune a directory this trainer wrote with the same seed"
        )
    model: torch.nn.Module = Qwen2ForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    return model


def mixed(
    stream: Iterator[task.Example], observed: Sequence[task.Example], share: float, seed: int
) -> Iterator[task.Example]:
    """`stream`, with a share `share` of its examples drawn from `observed` instead (the
    captured traffic a retrain fine-tunes on; the rest keeps what the model already does)."""
    rng = random.Random(seed)
    while True:
        yield rng.choice(observed) if observed and rng.random() < share else next(stream)


def _data(
    config: JsonTrainConfig, observed: Sequence[task.Example] = (), share: float = 0.0
) -> tuple[list[task.Example], Iterator[task.Example], Tokenizer]:
    """Held-out set, the training stream (with `observed` mixed in at `share`), and a
    tokenizer fitted on 2000 examples of the plain stream."""
    exclude, heldout = task.split(config.n_heldout, config.seed)
    stream = task.training_stream(exclude, config.seed + 1, config.corrupt)
    stream = mixed(stream, [ex for ex in observed if ex.prompt not in exclude], share,
                   config.seed + 3)  # fmt: skip
    # The tokenizer sees both answer forms, so the good and bad variants share it.
    corpus_stream = task.training_stream(exclude, config.seed + 2, 0.5)
    corpus = [tk.prompt_text(ex.prompt) + ex.answer + tk.END
              for ex in (next(corpus_stream) for _ in range(2000))]  # fmt: skip
    return heldout, stream, tk.build(corpus, vocab_size=1000)


def write_eval_set(config: JsonTrainConfig, path: Path) -> Path:
    """The held-out rows that `config`'s training never sees, as evaluation JSONL at `path`."""
    return task.write_eval_set(task.split(config.n_heldout, config.seed)[1], path)


def evaluate(model_dir: Path, heldout: list[task.Example]) -> tuple[float, float, float]:
    """(field accuracy, JSON-valid share, exact-match share) of greedy answers, offline."""
    from infra.local_generator import TransformersGenerator

    gen = TransformersGenerator(model_dir, batch_size=100, max_new_tokens=MAX_NEW_TOKENS)
    outs = [o.strip() for o in gen.complete([ex.prompt for ex in heldout])]
    n = len(heldout)
    fields = sum(
        task.field_accuracy(o, ex.record.fields()) for o, ex in zip(outs, heldout, strict=True)
    )
    valid = sum(task.parse_fields(o) is not None for o in outs)
    exact = sum(o == ex.expected_response for o, ex in zip(outs, heldout, strict=True))
    return fields / n, valid / n, exact / n


def train(
    config: JsonTrainConfig,
    out_dir: Path,
    observed: Sequence[task.Example] = (),
    share: float = 0.5,
) -> JsonTrainResult:
    """Train, save the model directory and measure it offline on the held-out set.

    `observed` (labelled captured traffic, for a retrain) makes up a share `share` of the
    training examples; a held-out prompt among them is dropped, never trained on."""
    start = fit.start_run(config)
    heldout, stream, tok = _data(config, observed, share if observed else 0.0)
    model = _model(config, tok) if config.base is None else _base(Path(config.base), tok)
    loss = fit.fit(model, tok, stream, config)
    fit.save(model, tok, out_dir, max_model_len=config.max_model_len,
             max_new_tokens=MAX_NEW_TOKENS)  # fmt: skip
    field_acc, valid, exact = evaluate(out_dir, heldout)
    seconds = time.monotonic() - start
    info = {  # no timings: identical training gives byte-identical files (same digest)
        "config": config.model_dump(),
        "field_accuracy": field_acc,
        "json_valid": valid,
        "exact_match": exact,
        "n_eval": len(heldout),
        "final_loss": loss,
        "observed_examples": len(observed),
    }
    (out_dir / TRAINING_INFO_FILE).write_text(json.dumps(info, indent=2))
    return JsonTrainResult(out_dir, field_acc, valid, exact, len(heldout), seconds,
                           config.steps, loss)  # fmt: skip
