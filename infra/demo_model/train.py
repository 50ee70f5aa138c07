"""Train the demo model from scratch and save a directory vLLM serves.

`train(config, out_dir)` is seeded and reproducible: same config → same weights (CPU, same
thread count). The default config trains in about two minutes on 2 cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import Field
from tokenizers import Tokenizer

from infra.demo_model import fit
from infra.demo_model import tokenizer as tk
from validation import quality
from validation.golden import Example, TaskSpec, split, training_stream, write_jsonl

GOLDEN_FILE = "golden.jsonl"
TRAINING_INFO_FILE = "canaryflow_training.json"


class TrainConfig(fit.ModelConfig):
    """How the demo model is trained. Field docs are the CLI help."""

    task: TaskSpec = Field(default_factory=TaskSpec, description="Arithmetic input distribution.")
    n_heldout: int = Field(
        500, ge=10, description="Held-out problems for exact match (golden set)."
    )


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    out_dir: Path
    exact_match: float
    n_eval: int
    seconds: float
    steps: int
    final_loss: float


def _model(config: TrainConfig, tok: Tokenizer) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    return fit.decoder(config, tok, LlamaConfig, LlamaForCausalLM,
                       num_key_value_heads=config.num_heads,
                       head_dim=config.hidden_size // config.num_heads)  # fmt: skip


def evaluate(model_dir: Path, examples: list[Example], batch_size: int = 256) -> float:
    """Exact match of greedy answers of the saved model on `examples` (offline, transformers)."""
    from infra.local_generator import TransformersGenerator

    return quality.score(TransformersGenerator(model_dir, batch_size=batch_size), examples).accuracy


def _data(config: TrainConfig) -> tuple[list[Example], Iterator[Example], Tokenizer]:
    """Held-out golden set, the training stream, and a tokenizer fitted on its first 2000."""
    heldout_prompts, heldout = split(config.task, config.n_heldout, config.seed)
    stream = training_stream(config.task, heldout_prompts, config.seed + 1)
    tok = tk.build(
        tk.prompt_text(ex.prompt) + ex.answer + tk.END for ex in (next(stream) for _ in range(2000))
    )
    return heldout, stream, tok


def save_untrained(config: TrainConfig, out_dir: Path) -> Path:
    """Save a randomly initialised model of `config`'s shape in seconds (tests, bad canaries)."""
    torch.manual_seed(config.seed)
    heldout, _, tok = _data(config)
    model = _model(config, tok)
    model.eval()
    _save(model, tok, config, out_dir, heldout)
    return out_dir


def train(config: TrainConfig, out_dir: Path) -> TrainResult:
    """Train, save an HF-format model directory with its golden set, and measure exact match."""
    start = fit.start_run(config)
    heldout, stream, tok = _data(config)
    model = _model(config, tok)
    loss_val = fit.fit(model, tok, stream, config)
    _save(model, tok, config, out_dir, heldout)
    score = evaluate(out_dir, heldout)
    seconds = time.monotonic() - start
    # No timings here: identical training must give byte-identical files (same digest).
    info = {
        "config": config.model_dump(),
        "exact_match": score,
        "n_eval": len(heldout),
        "final_loss": loss_val,
    }
    (out_dir / TRAINING_INFO_FILE).write_text(json.dumps(info, indent=2))
    return TrainResult(out_dir, score, len(heldout), seconds, config.steps, loss_val)


def _save(
    model: torch.nn.Module,
    tok: Tokenizer,
    config: TrainConfig,
    out_dir: Path,
    heldout: list[Example],
) -> None:
    fit.save(model, tok, out_dir, max_model_len=config.max_model_len, max_new_tokens=8)
    write_jsonl(heldout, out_dir / GOLDEN_FILE)
