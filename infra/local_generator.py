"""Offline greedy generation with transformers: scores a model directory before deploy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch


class TransformersGenerator:
    """Chat completions from a local HF model directory, greedy, batched, on CPU."""

    def __init__(self, model_dir: Path, batch_size: int = 64, max_new_tokens: int = 8) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(str(model_dir))
        self.tok.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        self.model.eval()  # type: ignore[no-untyped-call]
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens

    def complete(self, prompts: Sequence[str]) -> list[str]:
        """One greedy answer per user prompt, rendered through the model's chat template."""
        outs: list[str] = []
        for i in range(0, len(prompts), self.batch_size):
            texts = [
                self.tok.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts[i : i + self.batch_size]
            ]
            enc = self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                gen = self.model.generate(  # type: ignore[misc]
                    **enc,
                    max_new_tokens=self.max_new_tokens,
                    do_sample=False,
                    eos_token_id=self.tok.eos_token_id,
                    pad_token_id=self.tok.pad_token_id,
                )
            new = gen[:, enc["input_ids"].shape[1] :]
            outs.extend(self.tok.batch_decode(new, skip_special_tokens=True))
        return outs
