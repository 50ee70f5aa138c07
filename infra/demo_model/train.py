"""Train the demo model from scratch and save a directory vLLM serves.

`train(config, out_dir)` is seeded and reproducible: same config → same weights (CPU, same
thread count). The default config trains in about two minutes on 2 cores.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import BaseModel, Field, model_validator
from tokenizers import Tokenizer

from infra.demo_model import tokenizer as tk
from infra.errors import TrainingError
from validation import quality
from validation.golden import Example, TaskSpec, split, training_stream, write_jsonl

GOLDEN_FILE = "golden.jsonl"
TRAINING_INFO_FILE = "canaryflow_training.json"


class TrainConfig(BaseModel):
    """How the demo model is trained. Field docs are the CLI help."""

    task: TaskSpec = Field(default_factory=TaskSpec, description="Arithmetic input distribution.")
    seed: int = Field(0, description="Seed for data, init and shuffling.")
    steps: int = Field(1000, ge=1, description="Optimizer steps.")
    batch_size: int = Field(128, ge=1, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW, cosine decay).")
    hidden_size: int = Field(128, ge=32, description="Model width.")
    num_layers: int = Field(2, ge=1, description="Decoder layers.")
    num_heads: int = Field(
        2, ge=1, description="Attention heads; hidden_size/num_heads = head_dim."
    )
    n_heldout: int = Field(
        500, ge=10, description="Held-out problems for exact match (golden set)."
    )
    max_model_len: int = Field(64, ge=16, description="Context length written to config.json.")
    threads: int = Field(2, ge=1, description="torch CPU threads (fixed for reproducibility).")

    @model_validator(mode="after")
    def _head_dim(self) -> TrainConfig:
        if self.hidden_size % self.num_heads or self.hidden_size // self.num_heads != 64:
            raise ValueError(
                f"hidden_size/num_heads must be 64 (vLLM CPU attention supports head_dim 64), "
                f"got {self.hidden_size}/{self.num_heads}; set num_heads={self.hidden_size // 64}"
            )
        return self


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    out_dir: Path
    exact_match: float
    n_eval: int
    seconds: float
    steps: int
    final_loss: float


def _encode(tok: object, examples: list[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels; loss only on the answer and its end token."""
    enc = tok.encode  # type: ignore[attr-defined]
    rows: list[tuple[list[int], list[int]]] = []
    for ex in examples:
        p = enc(tk.prompt_text(ex.prompt)).ids
        a = enc(ex.answer + tk.END).ids
        rows.append((p + a, [-100] * len(p) + a))
    width = max(len(ids) for ids, _ in rows)
    pad = tok.token_to_id(tk.PAD)  # type: ignore[attr-defined]
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r_ids, r_lab) in enumerate(rows):
        ids[i, : len(r_ids)] = torch.tensor(r_ids)
        labels[i, : len(r_lab)] = torch.tensor(r_lab)
    return ids, labels


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


def _special_ids(tok: Tokenizer) -> tuple[int, int]:
    pad, end = tok.token_to_id(tk.PAD), tok.token_to_id(tk.END)
    if pad is None or end is None:
        raise TrainingError("tokenizer lost its special tokens; rebuild it with tokenizer.build")
    return pad, end


def _model(config: TrainConfig, vocab_size: int, pad_id: int, eos_id: int) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.hidden_size * 4,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        head_dim=config.hidden_size // config.num_heads,
        max_position_embeddings=config.max_model_len,
        pad_token_id=pad_id,
        eos_token_id=eos_id,
        bos_token_id=None,
        tie_word_embeddings=True,
        dtype="float32",
    )
    return LlamaForCausalLM(cfg)


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
    model = _model(config, tok.get_vocab_size(), *_special_ids(tok))
    model.eval()
    _save(model, tok, config, out_dir, heldout)
    return out_dir


def train(config: TrainConfig, out_dir: Path) -> TrainResult:
    """Train, save an HF-format model directory with its golden set, and measure exact match."""
    _quiet_transformers()
    start = time.monotonic()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    heldout, stream, tok = _data(config)
    pad_id, eos_id = _special_ids(tok)
    model = _model(config, tok.get_vocab_size(), pad_id, eos_id)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, config.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    loss_val = float("nan")
    for _ in range(config.steps):
        ids, labels = _encode(tok, [next(stream) for _ in range(config.batch_size)])
        out = model(input_ids=ids, attention_mask=ids.ne(pad_id).long(), labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_val = float(out.loss.detach())
    if not math.isfinite(loss_val):
        raise TrainingError(f"training diverged (loss {loss_val}); lower lr (now {config.lr})")
    model.eval()
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
    model: torch.nn.Module, tok: object, config: TrainConfig, out_dir: Path, heldout: list[Example]
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)  # type: ignore[operator]
    tk.save(tok, out_dir, config.max_model_len)  # type: ignore[arg-type]
    gen_cfg = {
        "eos_token_id": model.config.eos_token_id,  # type: ignore[union-attr]
        "pad_token_id": model.config.pad_token_id,  # type: ignore[union-attr]
        "do_sample": False,
        "max_new_tokens": 8,
    }
    (out_dir / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2))
    write_jsonl(heldout, out_dir / GOLDEN_FILE)
