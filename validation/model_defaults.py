"""Serving settings that default to what the model and the evaluation set say, not the demo.

    max_model_len(model_dir, asked)      # None -> config.json's max_position_embeddings
    max_tokens(model_dir, evalset)       # the longest expected answer, in the model's tokens

- `max_model_len`: unset means config.json's `max_position_embeddings` (or `n_positions`);
  a value beyond it is refused (ConfigError) unless config.json declares `rope_scaling`
  with a `factor`, which allows up to `factor x max_position_embeddings` (vLLM's rule for
  extended context).
- `max_tokens`: the longest expected answer of the set (expected_response, or the JSON of
  expected fields) tokenized with the model's tokenizer.json, plus `HEADROOM` tokens for
  end-of-sequence and formatting. Without tokenizer.json the bound is the answer's length in
  characters (a token is at least one character in the byte-level BPE tokenizers vLLM
  serves, so the character count never undercounts). A set without any expected answer
  gives `NO_ANSWER_MAX_TOKENS`.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from infra.errors import ConfigError
from validation.evaluation.rows import EvaluationSet

log = logging.getLogger("canaryflow.validation")
HEADROOM = 4
NO_ANSWER_MAX_TOKENS = 256
MAX_TOKENS_CAP = 4096


def _config(model_dir: Path) -> dict[str, Any]:
    try:
        config: dict[str, Any] = json.loads((model_dir / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{model_dir}/config.json cannot be read: {exc}") from exc
    return config


def max_model_len(model_dir: Path, asked: int | None) -> int:
    """The context length to serve: `asked`, or what config.json declares; refuses more than
    the model supports."""
    config = _config(model_dir)
    declared = config.get("max_position_embeddings", config.get("n_positions"))
    if not isinstance(declared, int):
        if asked is None:
            raise ConfigError(
                f"{model_dir}/config.json declares no max_position_embeddings: set "
                f"serving.max_model_len in the release spec"
            )
        return asked
    if asked is None:
        return declared
    rope = config.get("rope_scaling") or {}
    factor = rope.get("factor") if isinstance(rope, dict) else None
    allowed = int(declared * factor) if isinstance(factor, int | float) and factor > 1 else declared
    if asked > allowed:
        why = f" (rope_scaling factor {factor})" if allowed != declared else ""
        raise ConfigError(
            f"serving.max_model_len {asked} exceeds what the model supports: {allowed} "
            f"tokens{why}, from config.json's max_position_embeddings {declared}; lower "
            f"max_model_len or leave it unset"
        )
    return asked


def _answer_text(expectations: dict[str, Any]) -> str | None:
    if expectations.get("expected_response") is not None:
        return str(expectations["expected_response"])
    if isinstance(expectations.get("fields"), dict):
        return json.dumps(expectations["fields"])
    return None


def max_tokens(model_dir: Path, evalset: EvaluationSet, asked: int | None = None) -> int:
    """`asked`, or the longest expected answer in tokens plus HEADROOM (see module doc)."""
    if asked is not None:
        return asked
    answers = [a for r in evalset.rows if (a := _answer_text(dict(r.expectations))) is not None]
    if not answers:
        return NO_ANSWER_MAX_TOKENS
    count = _token_counter(model_dir)
    longest = max(int(count(a)) for a in answers)
    return min(longest + HEADROOM, MAX_TOKENS_CAP)


def _token_counter(model_dir: Path) -> Any:
    tok_file = model_dir / "tokenizer.json"
    if tok_file.is_file():
        try:
            from tokenizers import Tokenizer

            tok = Tokenizer.from_file(str(tok_file))
            return lambda text: len(tok.encode(text, add_special_tokens=False).ids)
        except Exception as exc:  # an unreadable tokenizer falls back to the char bound
            log.warning("tokenizer.json of %s does not load (%s); counting chars", model_dir, exc)
    return len
