"""What both demo models share: the size knobs, the training loop and the saved directory.

The arithmetic model (`infra.demo_model.train`) and the JSON-extraction model
(`infra.demo_model_json.train`) differ in their task, architecture and defaults; everything
here is the same for both, so it lives once. Training is a plain AdamW loop with warmup and
cosine decay on chat-templated (prompt, answer) pairs with the loss on the answer only; the
transformers `Trainer` would add little for a from-scratch model this small and cost
reproducibility knobs we rely on (same config → byte-identical weights on CPU).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import BaseModel, Field, model_validator
from tokenizers import Tokenizer

from infra.demo_model import tokenizer as tk
from infra.errors import TrainingError

log = logging.getLogger("canaryflow.train")
PROGRESS_EVERY_S = 5.0
"""fit() logs its step and loss this often (INFO, canaryflow.train): make demo shows it."""


class PromptAnswer(Protocol):
    """One training pair: a user prompt and the exact assistant answer to learn."""

    @property
    def prompt(self) -> str: ...

    @property
    def answer(self) -> str: ...


class ModelConfig(BaseModel):
    """Size and optimizer knobs of a from-scratch demo model. Field docs are the CLI help."""

    seed: int = Field(0, description="Seed for data, init and shuffling.")
    steps: int = Field(1000, ge=1, description="Optimizer steps.")
    batch_size: int = Field(128, ge=1, description="Examples per step.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate (AdamW, cosine decay).")
    hidden_size: int = Field(128, ge=32, description="Model width.")
    num_layers: int = Field(2, ge=1, description="Decoder layers.")
    num_heads: int = Field(
        2, ge=1, description="Attention heads; hidden_size/num_heads = head_dim."
    )
    max_model_len: int = Field(64, ge=16, description="Context length written to config.json.")
    threads: int = Field(2, ge=1, description="torch CPU threads (fixed for reproducibility).")

    @model_validator(mode="after")
    def _head_dim(self) -> ModelConfig:
        if self.hidden_size % self.num_heads or self.hidden_size // self.num_heads != 64:
            raise ValueError(
                f"hidden_size/num_heads must be 64 (vLLM CPU attention supports head_dim 64), "
                f"got {self.hidden_size}/{self.num_heads}; set num_heads={self.hidden_size // 64}"
            )
        return self


def decoder_config(
    config: ModelConfig, vocab_size: int, pad_id: int, eos_id: int
) -> dict[str, Any]:
    """config.json fields both demo models share: tied embeddings, float32, no BOS token."""
    return {
        "vocab_size": vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.hidden_size * 4,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.num_heads,
        "max_position_embeddings": config.max_model_len,
        "pad_token_id": pad_id,
        "eos_token_id": eos_id,
        "bos_token_id": None,
        "tie_word_embeddings": True,
        "dtype": "float32",
    }


def decoder(
    config: ModelConfig, tok: Tokenizer, config_cls: type[Any], model_cls: type[Any], **extra: Any
) -> torch.nn.Module:
    """A randomly initialised `model_cls` whose transformers `config_cls` is `decoder_config`
    plus the architecture's own fields (`extra`)."""
    pad_id, eos_id = special_ids(tok)
    cfg = config_cls(**decoder_config(config, tok.get_vocab_size(), pad_id, eos_id), **extra)
    model: torch.nn.Module = model_cls(cfg)
    return model


def start_run(config: ModelConfig) -> float:
    """Quiet transformers, seed torch and fix its threads (reproducible weights); the start
    time (monotonic) for the run's duration."""
    quiet_transformers()
    start = time.monotonic()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    return start


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]


def special_ids(tok: Tokenizer) -> tuple[int, int]:
    """(pad id, end-of-turn id) of a tokenizer made by `tokenizer.build`."""
    pad, end = tok.token_to_id(tk.PAD), tok.token_to_id(tk.END)
    if pad is None or end is None:
        raise TrainingError("tokenizer lost its special tokens; rebuild it with tokenizer.build")
    return pad, end


def encode(tok: Tokenizer, examples: Sequence[PromptAnswer]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded input ids and labels; loss only on the answer and its end token."""
    rows: list[tuple[list[int], list[int]]] = []
    for ex in examples:
        p = tok.encode(tk.prompt_text(ex.prompt)).ids
        a = tok.encode(ex.answer + tk.END).ids
        rows.append((p + a, [-100] * len(p) + a))
    width = max(len(ids) for ids, _ in rows)
    pad, _ = special_ids(tok)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (r_ids, r_lab) in enumerate(rows):
        ids[i, : len(r_ids)] = torch.tensor(r_ids)
        labels[i, : len(r_lab)] = torch.tensor(r_lab)
    return ids, labels


def fit(
    model: torch.nn.Module, tok: Tokenizer, stream: Iterator[PromptAnswer], config: ModelConfig
) -> float:
    """Train `model` in place for `config.steps` batches of `stream`; returns the last loss."""
    pad_id, _ = special_ids(tok)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, config.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    loss_val = float("nan")
    said = time.monotonic()
    for step in range(config.steps):
        ids, labels = encode(tok, [next(stream) for _ in range(config.batch_size)])
        out = model(input_ids=ids, attention_mask=ids.ne(pad_id).long(), labels=labels)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_val = float(out.loss.detach())
        if time.monotonic() - said >= PROGRESS_EVERY_S or step + 1 == config.steps:
            said = time.monotonic()
            log.info("step %d/%d, loss %.3f", step + 1, config.steps, loss_val)
    if not math.isfinite(loss_val):
        raise TrainingError(f"training diverged (loss {loss_val}); lower lr (now {config.lr})")
    model.eval()
    return loss_val


def save(
    model: torch.nn.Module,
    tok: Tokenizer,
    out_dir: Path,
    *,
    max_model_len: int,
    max_new_tokens: int,
) -> None:
    """Weights (safetensors), tokenizer + chat template and generation_config.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)  # type: ignore[operator]
    tk.save(tok, out_dir, max_model_len)
    gen_cfg = {
        "eos_token_id": model.config.eos_token_id,  # type: ignore[union-attr]
        "pad_token_id": model.config.pad_token_id,  # type: ignore[union-attr]
        "do_sample": False,
        "max_new_tokens": max_new_tokens,
    }
    (out_dir / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2))
