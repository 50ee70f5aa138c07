"""Is this model directory something vLLM will serve? Checked before anything is registered.

`check_artifact(model_dir, flavor)` reads only metadata (config, tokenizer, safetensors
headers), never the weights, and raises the first problem as a named error:

    MissingFileError       a required file is absent (config, weights, tokenizer, ...)
    ConfigError            config.json / generation_config.json unparsable or lacking fields
    UnsupportedModelError  architecture not in SUPPORTED_ARCHITECTURES, or (cpu) head_dim
                           outside CPU_HEAD_DIMS
    TokenizerError         tokenizer.json does not load, no chat template, vocab too large
    SafetensorsError       bad header, bad dtype, truncated/overlapping data, shape mismatch
    ChecksumMismatchError  files differ from canaryflow_manifest.json (when one is present)

The manifest is checked first: if the files are not the ones that were packaged, that is the
root cause and every later finding would be a symptom of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from infra.errors import (
    ConfigError,
    MissingFileError,
    SafetensorsError,
    TokenizerError,
    UnsupportedModelError,
)
from validation import manifest
from validation.safetensors_header import SAFETENSORS_INDEX, TensorInfo, read_safetensors
from validation.safetensors_header import read_json_object as _read_json

Flavor = Literal["cpu", "gpu"]

# Decoder-only architectures vLLM serves as text generators (a deliberate subset: ones we
# can check and that a release pipeline is likely to see).
SUPPORTED_ARCHITECTURES: frozenset[str] = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM",
    "Qwen2ForCausalLM", "Qwen2MoeForCausalLM", "Qwen3ForCausalLM", "Qwen3MoeForCausalLM",
    "GemmaForCausalLM", "Gemma2ForCausalLM", "Phi3ForCausalLM", "GraniteForCausalLM",
    "OlmoForCausalLM", "Olmo2ForCausalLM", "StableLmForCausalLM", "Starcoder2ForCausalLM",
    "GPT2LMHeadModel", "GPTNeoXForCausalLM", "FalconForCausalLM",
})  # fmt: skip
# Architectures whose tensors follow Llama's names, so every shape can be checked.
LLAMA_LIKE: frozenset[str] = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
    "GemmaForCausalLM", "Gemma2ForCausalLM", "GraniteForCausalLM",
    "OlmoForCausalLM", "Olmo2ForCausalLM",
})  # fmt: skip
# vLLM's CPU attention kernels exist only for these head sizes; others fail at first request.
CPU_HEAD_DIMS: frozenset[int] = frozenset({32, 64, 80, 96, 112, 128, 160, 192, 224, 256})
REQUIRED_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json",
                  "generation_config.json")  # fmt: skip


class ModelShape(BaseModel):
    """The numbers of config.json the checks and the memory estimate need, normalised."""

    model_config = ConfigDict(frozen=True)

    architecture: str
    model_type: str | None
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool | None  # None: config.json does not say
    max_position_embeddings: int | None
    torch_dtype: str | None


class ArtifactReport(BaseModel):
    """What check_artifact found in a model directory that passed every check."""

    model_config = ConfigDict(frozen=True)

    model_dir: Path
    flavor: Flavor
    shape: ModelShape
    files: list[str]  # every file, relative to model_dir
    safetensors_files: list[str]
    tensor_dtypes: list[str]  # safetensors dtype names, e.g. ["F32"]
    num_tensors: int
    num_params: int
    weight_bytes: int  # as stored on disk (tensor data only)
    shapes_checked: bool  # every tensor shape was compared against config.json
    tokenizer_vocab_size: int
    chat_template_source: str  # the file the chat template came from
    manifest_digest: str | None  # content digest when canaryflow_manifest.json was verified

    @property
    def architecture(self) -> str:
        return self.shape.architecture

    @property
    def head_dim(self) -> int:
        return self.shape.head_dim


def check_artifact(model_dir: Path, flavor: Flavor) -> ArtifactReport:
    """Every pre-deploy check of `model_dir` for the `flavor` image; raises the first failure."""
    if not model_dir.is_dir():
        raise MissingFileError(f"model directory {model_dir} does not exist; check the path")
    digest = None
    if (model_dir / manifest.MANIFEST_FILE).is_file():
        digest = manifest.verify(model_dir)
    _require_files(model_dir)
    config = _read_json(model_dir / "config.json", ConfigError)
    _read_json(model_dir / "generation_config.json", ConfigError)
    shape = model_shape(config)
    check_support(shape, flavor)
    vocab, template_source = check_tokenizer(model_dir, shape.vocab_size)
    tensors = read_safetensors(model_dir)
    checked = check_shapes(shape, config, tensors)
    return ArtifactReport(
        model_dir=model_dir,
        flavor=flavor,
        shape=shape,
        files=sorted(
            p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file()
        ),
        safetensors_files=sorted({t.file for t in tensors.values()}),
        tensor_dtypes=sorted({t.dtype for t in tensors.values()}),
        num_tensors=len(tensors),
        num_params=sum(math.prod(t.shape) for t in tensors.values()),
        weight_bytes=sum(t.nbytes for t in tensors.values()),
        shapes_checked=checked,
        tokenizer_vocab_size=vocab,
        chat_template_source=template_source,
        manifest_digest=digest,
    )


def _require_files(model_dir: Path) -> None:
    missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
    if not (model_dir / SAFETENSORS_INDEX).is_file() and not any(model_dir.glob("*.safetensors")):
        missing.append("*.safetensors (weights)")
    if missing:
        raise MissingFileError(
            f"{model_dir} lacks {', '.join(missing)}; vLLM needs them all. Save the model with "
            f"save_pretrained(..., safe_serialization=True) and the tokenizer with "
            f"tokenizer.save_pretrained(...), or re-download the model version"
        )


def _int_field(config: Mapping[str, Any], *names: str, default: int | None = None) -> int:
    for name in names:
        value = config.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(
                    f"config.json {name}={value!r} is not a positive integer; fix config.json"
                )
            return value
    if default is None:
        raise ConfigError(
            f"config.json has no {' / '.join(names)}; vLLM needs it to build the model. "
            f"Re-save the config with transformers' save_pretrained"
        )
    return default


def model_shape(config: Mapping[str, Any]) -> ModelShape:
    """Normalise config.json (Llama and GPT-2 field names); raises ConfigError on gaps."""
    archs = config.get("architectures")
    if not isinstance(archs, list) or not archs or not all(isinstance(a, str) for a in archs):
        raise ConfigError(
            f"config.json architectures={archs!r} must be a non-empty list of class names, "
            f'e.g. ["LlamaForCausalLM"]; save the model with save_pretrained'
        )
    hidden = _int_field(config, "hidden_size", "n_embd", "d_model")
    heads = _int_field(config, "num_attention_heads", "n_head")
    explicit_head_dim = config.get("head_dim")
    if explicit_head_dim is None and hidden % heads:
        raise ConfigError(
            f"config.json hidden_size {hidden} is not divisible by num_attention_heads {heads} "
            f"and no head_dim is given; fix one of them"
        )
    max_pos = config.get("max_position_embeddings", config.get("n_positions"))
    tie = config.get("tie_word_embeddings")
    dtype = config.get("torch_dtype", config.get("dtype"))
    model_type = config.get("model_type")
    return ModelShape(
        architecture=archs[0],
        model_type=model_type if isinstance(model_type, str) else None,
        hidden_size=hidden,
        num_layers=_int_field(config, "num_hidden_layers", "n_layer"),
        num_attention_heads=heads,
        num_kv_heads=_int_field(config, "num_key_value_heads", default=heads),
        head_dim=_int_field(config, "head_dim", default=hidden // heads),
        intermediate_size=_int_field(config, "intermediate_size", "n_inner", default=4 * hidden),
        vocab_size=_int_field(config, "vocab_size"),
        tie_word_embeddings=tie if isinstance(tie, bool) else None,
        max_position_embeddings=max_pos if isinstance(max_pos, int) else None,
        torch_dtype=dtype if isinstance(dtype, str) else None,
    )


def check_support(shape: ModelShape, flavor: Flavor) -> None:
    """Architecture in SUPPORTED_ARCHITECTURES; on cpu, head_dim in CPU_HEAD_DIMS."""
    if shape.architecture not in SUPPORTED_ARCHITECTURES:
        raise UnsupportedModelError(
            f"architecture {shape.architecture} is not in canaryflow's supported set "
            f"{sorted(SUPPORTED_ARCHITECTURES)}; convert the model to one of them, or add it to "
            f"SUPPORTED_ARCHITECTURES after checking vLLM serves it"
        )
    if flavor == "cpu" and shape.head_dim not in CPU_HEAD_DIMS:
        raise UnsupportedModelError(
            f"head_dim {shape.head_dim} is not supported by vLLM's CPU attention (supported: "
            f"{sorted(CPU_HEAD_DIMS)}); it would fail at the first request. Choose hidden_size "
            f"/ num_attention_heads (or head_dim) giving one of those, or use the gpu flavor"
        )


def check_tokenizer(model_dir: Path, config_vocab: int) -> tuple[int, str]:
    """Load tokenizer.json, find a chat template; returns (vocab size, template source)."""
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a bare Exception on any parse error
        raise TokenizerError(
            f"{path} does not load ({e}); re-save the tokenizer with save_pretrained"
        ) from e
    vocab = int(tok.get_vocab_size(with_added_tokens=True))
    if vocab > config_vocab:
        raise TokenizerError(
            f"tokenizer has {vocab} tokens but config.json vocab_size is {config_vocab}: ids "
            f"past {config_vocab - 1} would index outside the embedding; resize the embeddings "
            f"(model.resize_token_embeddings) or use the tokenizer the model was trained with"
        )
    tok_config = _read_json(model_dir / "tokenizer_config.json", TokenizerError)
    return vocab, _chat_template_source(model_dir, tok_config)


def _chat_template_source(model_dir: Path, tok_config: Mapping[str, Any]) -> str:
    # transformers 5 writes chat_template.jinja; older models keep it in tokenizer_config.json.
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file() and jinja.read_text(encoding="utf-8").strip():
        _compile_template(jinja.read_text(encoding="utf-8"), jinja.name)
        return jinja.name
    template = tok_config.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": ..., "template": ...}]
        template = next(
            (t.get("template") for t in template if isinstance(t, dict) and t.get("template")),
            None,
        )
    if isinstance(template, str) and template.strip():
        _compile_template(template, "tokenizer_config.json")
        return "tokenizer_config.json"
    raise TokenizerError(
        f"{model_dir} has no chat template (neither chat_template.jinja nor chat_template in "
        f"tokenizer_config.json); /v1/chat/completions would fail. Set tokenizer.chat_template "
        f"and save_pretrained, or pass --chat-template to vLLM"
    )


def _compile_template(source: str, where: str) -> None:
    env = ImmutableSandboxedEnvironment(extensions=["jinja2.ext.loopcontrols", _Generation])
    try:
        env.from_string(source)
    except TemplateSyntaxError as e:
        raise TokenizerError(
            f"chat template in {where} does not compile (line {e.lineno}: {e.message}); "
            f"fix the Jinja syntax"
        ) from e


class _Generation(Extension):
    """transformers' `{% generation %}` block (assistant-token masks): a no-op scope here."""

    tags = {"generation"}  # noqa: RUF012 - jinja2 reads this class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def expected_shapes(shape: ModelShape) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape config.json implies, for Llama-named checkpoints (no lm_head)."""
    h, i, v = shape.hidden_size, shape.intermediate_size, shape.vocab_size
    q, kv = shape.num_attention_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (v, h)}
    for n in range(shape.num_layers):
        p = f"model.layers.{n}."
        out |= {
            p + "self_attn.q_proj.weight": (q, h),
            p + "self_attn.k_proj.weight": (kv, h),
            p + "self_attn.v_proj.weight": (kv, h),
            p + "self_attn.o_proj.weight": (h, q),
            p + "mlp.gate_proj.weight": (i, h),
            p + "mlp.up_proj.weight": (i, h),
            p + "mlp.down_proj.weight": (h, i),
        }
    return out


def check_shapes(
    shape: ModelShape, config: Mapping[str, Any], tensors: Mapping[str, TensorInfo]
) -> bool:
    """Compare tensors with config.json; False when the layout is not one we can check."""
    if shape.architecture not in LLAMA_LIKE or config.get("quantization_config"):
        return False
    expected = expected_shapes(shape)
    if shape.tie_word_embeddings is False or "lm_head.weight" in tensors:
        expected["lm_head.weight"] = (shape.vocab_size, shape.hidden_size)
    for name, want in expected.items():
        got = tensors.get(name)
        if got is None:
            raise SafetensorsError(
                f"tensor {name} (shape {list(want)} by config.json) is not in the checkpoint; "
                f"config.json and the weights come from different models, re-save both together"
            )
        if got.shape != want:
            raise SafetensorsError(
                f"tensor {name} in {got.file} has shape {list(got.shape)} but config.json "
                f"implies {list(want)} (hidden_size {shape.hidden_size}, heads "
                f"{shape.num_attention_heads}/{shape.num_kv_heads}, head_dim {shape.head_dim}, "
                f"intermediate_size {shape.intermediate_size}, vocab_size {shape.vocab_size}); "
                f"config.json and the weights come from different models, re-save both together"
            )
    return True
