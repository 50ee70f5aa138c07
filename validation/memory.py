"""Will the model fit? Weights + KV cache + activations + runtime overhead vs the memory budget.

The estimate (all in bytes):

    weights      weight_bytes if given (quantized checkpoints), else num_params x dtype_bytes
                 (vLLM casts to the serving dtype), else a Llama-style count from config.json
    kv_cache     num_layers x num_kv_heads x head_dim x 2 (K and V) x dtype_bytes
                 x max_model_len x max_num_seqs: every sequence at full length at once. vLLM
                 itself only refuses to start when one max_model_len sequence does not fit;
                 we ask for the whole concurrency so a canary is not queue-bound under load.
    activations  peak of one forward pass over max_num_batched_tokens (default max_model_len):
                 tokens x (4 x hidden + 2 x intermediate) x dtype_bytes, plus fp32 logits
                 for max_num_seqs rows of vocab_size.
    overhead     a fixed runtime reserve (CUDA context, graphs, allocator slack), 1 GiB
                 unless told otherwise.

GPU: total <= target_bytes x gpu_memory_utilization (`check_fit`). CPU: vLLM reserves a KV
cache of exactly VLLM_CPU_KVCACHE_SPACE GiB, so the KV cache must fit in that, and weights +
that reservation + the rest must fit in host memory when it is given (`check_fit_cpu`).
Both raise MemoryFitError with the numbers and values of the knobs that would fit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from infra.errors import MemoryFitError
from validation.artifact import ModelShape, model_shape

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_RUNTIME_OVERHEAD_BYTES = 1 * GiB
DEFAULT_CPU_KVCACHE_SPACE_GIB = 4.0  # vLLM's default for VLLM_CPU_KVCACHE_SPACE
MAX_GPU_MEMORY_UTILIZATION = 0.95  # above this, other processes and fragmentation bite
DTYPE_BYTES: Mapping[str, int] = {
    "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1,
}  # fmt: skip


class MemoryEstimate(BaseModel):
    """The memory a vLLM server of this model and these limits needs, by part."""

    model_config = ConfigDict(frozen=True)

    shape: ModelShape
    dtype_bytes: int
    max_model_len: int
    max_num_seqs: int
    max_num_batched_tokens: int | None  # None: one full-length prefill (max_model_len)
    weight_bytes: int
    kv_bytes_per_token: int  # per token of one sequence, all layers, K and V
    kv_cache_bytes: int
    activation_bytes: int
    overhead_bytes: int
    total_bytes: int

    def with_limits(
        self, max_model_len: int | None = None, max_num_seqs: int | None = None
    ) -> MemoryEstimate:
        """The same model with other limits (what a suggested knob value would need)."""
        return _compute(
            self.shape,
            self.dtype_bytes,
            max_model_len or self.max_model_len,
            max_num_seqs or self.max_num_seqs,
            self.max_num_batched_tokens,
            self.weight_bytes,
            self.overhead_bytes,
        )


class FitSuggestion(BaseModel):
    """Values of single knobs that would each make the estimate fit the budget (None: none)."""

    model_config = ConfigDict(frozen=True)

    max_model_len: int | None
    max_num_seqs: int | None
    gpu_memory_utilization: float | None
    target_gib: int  # the smallest whole-GiB device that fits at the given utilization


def dtype_bytes(dtype: str) -> int:
    """Bytes per element of a vLLM --dtype / kv-cache dtype name."""
    try:
        return DTYPE_BYTES[dtype.lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPE_BYTES)}") from None


def params_from_config(shape: ModelShape) -> int:
    """Parameter count of a Llama-style decoder (approximate for other layouts)."""
    h, i, v = shape.hidden_size, shape.intermediate_size, shape.vocab_size
    q, kv = shape.num_attention_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * i + 2 * h
    lm_head = 0 if shape.tie_word_embeddings is not False else v * h
    return v * h + shape.num_layers * per_layer + h + lm_head


def estimate(
    config_json: Mapping[str, Any],
    dtype_bytes: int,
    max_model_len: int,
    max_num_seqs: int,
    *,
    num_params: int | None = None,
    weight_bytes: int | None = None,
    max_num_batched_tokens: int | None = None,
    runtime_overhead_bytes: int = DEFAULT_RUNTIME_OVERHEAD_BYTES,
) -> MemoryEstimate:
    """Estimate serving memory for a config.json (see the module docstring for the formula).

    Pass `num_params` from `ArtifactReport.num_params` (exact, from the safetensors headers)
    or `weight_bytes` for quantized weights; otherwise the count comes from config.json.
    """
    for name, value in (("dtype_bytes", dtype_bytes), ("max_model_len", max_model_len),
                        ("max_num_seqs", max_num_seqs)):  # fmt: skip
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    shape = model_shape(config_json)
    if weight_bytes is None:
        weight_bytes = (num_params or params_from_config(shape)) * dtype_bytes
    return _compute(
        shape,
        dtype_bytes,
        max_model_len,
        max_num_seqs,
        max_num_batched_tokens,
        weight_bytes,
        runtime_overhead_bytes,
    )


def _compute(
    shape: ModelShape,
    dtype_bytes: int,
    max_model_len: int,
    max_num_seqs: int,
    max_num_batched_tokens: int | None,
    weight_bytes: int,
    overhead_bytes: int,
) -> MemoryEstimate:
    per_token = shape.num_layers * shape.num_kv_heads * shape.head_dim * 2 * dtype_bytes
    kv = per_token * max_model_len * max_num_seqs
    tokens = max_num_batched_tokens or max_model_len
    width = 4 * shape.hidden_size + 2 * shape.intermediate_size
    activations = tokens * width * dtype_bytes + max_num_seqs * shape.vocab_size * 4
    return MemoryEstimate(
        shape=shape,
        dtype_bytes=dtype_bytes,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        max_num_batched_tokens=max_num_batched_tokens,
        weight_bytes=weight_bytes,
        kv_bytes_per_token=per_token,
        kv_cache_bytes=kv,
        activation_bytes=activations,
        overhead_bytes=overhead_bytes,
        total_bytes=weight_bytes + kv + activations + overhead_bytes,
    )


def fmt_bytes(n: float) -> str:
    """Bytes as GiB (>= 1 GiB) or MiB, two decimals."""
    return f"{n / GiB:.2f} GiB" if abs(n) >= GiB else f"{n / MiB:.2f} MiB"


def _largest(lo: int, hi: int, fits: Callable[[int], bool]) -> int | None:
    """Largest x in [lo, hi] with fits(x), for a monotone (true-then-false) predicate."""
    if hi < lo or not fits(lo):
        return None
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def suggest(est: MemoryEstimate, target_bytes: int, utilization: float) -> FitSuggestion:
    """Single-knob changes that would fit `est` into target_bytes x utilization."""
    budget = target_bytes * utilization
    length = _largest(1, est.max_model_len, lambda n: _total(est, n, None) <= budget)
    if length is not None and length >= 16:
        length -= length % 16  # a whole number of vLLM KV blocks; smaller still fits
    seqs = _largest(1, est.max_num_seqs, lambda n: _total(est, None, n) <= budget)
    util = math.ceil(est.total_bytes / target_bytes * 100) / 100
    if est.total_bytes > target_bytes * util:  # float rounding
        util = round(util + 0.01, 2)
    return FitSuggestion(
        max_model_len=length,
        max_num_seqs=seqs,
        gpu_memory_utilization=util if util <= MAX_GPU_MEMORY_UTILIZATION else None,
        target_gib=math.ceil(est.total_bytes / utilization / GiB),
    )


def _total(est: MemoryEstimate, max_model_len: int | None, max_num_seqs: int | None) -> int:
    return est.with_limits(max_model_len, max_num_seqs).total_bytes


def _breakdown(est: MemoryEstimate) -> str:
    return (
        f"weights {fmt_bytes(est.weight_bytes)} + KV cache {fmt_bytes(est.kv_cache_bytes)} "
        f"({est.max_model_len} tokens x {est.max_num_seqs} seqs x "
        f"{est.kv_bytes_per_token} B/token) + activations {fmt_bytes(est.activation_bytes)} "
        f"+ runtime overhead {fmt_bytes(est.overhead_bytes)} = {fmt_bytes(est.total_bytes)}"
    )


def check_fit(est: MemoryEstimate, target_bytes: int, utilization: float) -> None:
    """Raise MemoryFitError unless `est` fits in target_bytes x gpu_memory_utilization."""
    if target_bytes <= 0 or not 0 < utilization <= 1:
        raise ValueError(
            f"need target_bytes > 0 and 0 < utilization <= 1, got {target_bytes}, {utilization}"
        )
    budget = target_bytes * utilization
    if est.total_bytes <= budget:
        return
    s = suggest(est, target_bytes, utilization)
    knobs = []
    if s.max_model_len is not None and s.max_model_len < est.max_model_len:
        knobs.append(f"lower max_model_len to {s.max_model_len}")
    if s.max_num_seqs is not None and s.max_num_seqs < est.max_num_seqs:
        knobs.append(f"lower max_num_seqs to {s.max_num_seqs}")
    if s.gpu_memory_utilization is not None:
        knobs.append(f"raise gpu_memory_utilization to {s.gpu_memory_utilization:.2f}")
    knobs.append(f"use a GPU with at least {s.target_gib} GiB")
    if est.weight_bytes + est.overhead_bytes > budget:
        knobs.append("split it over GPUs (tensor_parallel_size), or serve a quantized checkpoint")
    raise MemoryFitError(
        f"model does not fit: {_breakdown(est)} > budget {fmt_bytes(budget)} "
        f"({utilization:.2f} x {fmt_bytes(target_bytes)}). To fit: {', or '.join(knobs)}"
    )


def check_fit_cpu(
    est: MemoryEstimate,
    kvcache_space_gib: float = DEFAULT_CPU_KVCACHE_SPACE_GIB,
    host_memory_bytes: int | None = None,
) -> None:
    """CPU flavor: the KV cache must fit VLLM_CPU_KVCACHE_SPACE; the rest, host memory."""
    if kvcache_space_gib <= 0:
        raise ValueError(f"kvcache_space_gib must be > 0, got {kvcache_space_gib}")
    space = int(kvcache_space_gib * GiB)
    if est.kv_cache_bytes > space:
        per_seq = est.kv_bytes_per_token * est.max_model_len
        length = space // (est.kv_bytes_per_token * est.max_num_seqs)
        seqs = space // per_seq
        knobs = [f"set VLLM_CPU_KVCACHE_SPACE={math.ceil(est.kv_cache_bytes / GiB)}"]
        if length >= 1:
            knobs.append(f"lower max_model_len to {length}")
        if seqs >= 1:
            knobs.append(f"lower max_num_seqs to {seqs}")
        raise MemoryFitError(
            f"KV cache does not fit VLLM_CPU_KVCACHE_SPACE={kvcache_space_gib:g} GiB: "
            f"{est.max_model_len} tokens x {est.max_num_seqs} seqs x {est.kv_bytes_per_token} "
            f"B/token = {fmt_bytes(est.kv_cache_bytes)} > {fmt_bytes(space)}. To fit: "
            f"{', or '.join(knobs)}"
        )
    if host_memory_bytes is None:
        return
    rest = est.total_bytes - est.kv_cache_bytes
    if rest + space <= host_memory_bytes:
        return
    lowest = max(1, math.ceil(est.kv_cache_bytes / GiB))
    knobs = [f"use a host with at least {math.ceil((rest + space) / GiB)} GiB"]
    if rest + lowest * GiB <= host_memory_bytes:
        knobs.insert(0, f"lower VLLM_CPU_KVCACHE_SPACE to {lowest}")
    raise MemoryFitError(
        f"host memory too small: weights {fmt_bytes(est.weight_bytes)} + reserved KV cache "
        f"{fmt_bytes(space)} (VLLM_CPU_KVCACHE_SPACE) + activations "
        f"{fmt_bytes(est.activation_bytes)} + runtime overhead {fmt_bytes(est.overhead_bytes)} "
        f"= {fmt_bytes(rest + space)} > {fmt_bytes(host_memory_bytes)}. To fit: "
        f"{', or '.join(knobs)}"
    )


def check_model_fit_cpu(
    model_dir: Path,
    weight_bytes: int,
    max_model_len: int,
    max_num_seqs: int,
    kvcache_space_gib: float = DEFAULT_CPU_KVCACHE_SPACE_GIB,
) -> MemoryEstimate:
    """Estimate a checked model directory and require it to fit the CPU flavor's budget."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    dtype = str(config.get("torch_dtype") or config.get("dtype") or "float32")
    est = estimate(
        config, dtype_bytes(dtype), max_model_len, max_num_seqs, weight_bytes=weight_bytes
    )
    check_fit_cpu(est, kvcache_space_gib=kvcache_space_gib)
    return est
