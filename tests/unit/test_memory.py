"""Memory fit: the formula on known shapes, and suggested knob values that really fit."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from infra.errors import MemoryFitError
from validation.artifact import check_artifact, model_shape
from validation.memory import (
    GiB,
    MiB,
    check_fit,
    check_fit_cpu,
    dtype_bytes,
    estimate,
    params_from_config,
    suggest,
)

# Llama-3-8B's shape: 32 layers, 8 KV heads of 128 -> 128 KiB of bf16 KV cache per token.
LLAMA_8B: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "tie_word_embeddings": False,
}
LLAMA_70B = LLAMA_8B | {"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                        "num_attention_heads": 64}  # fmt: skip


def test_kv_cache_follows_the_formula() -> None:
    est = estimate(LLAMA_8B, dtype_bytes("bfloat16"), max_model_len=8192, max_num_seqs=4)

    assert est.kv_bytes_per_token == 32 * 8 * 128 * 2 * 2 == 128 * 1024
    assert est.kv_cache_bytes == 128 * 1024 * 8192 * 4 == 4 * GiB
    assert est.total_bytes == (
        est.weight_bytes + est.kv_cache_bytes + est.activation_bytes + est.overhead_bytes
    )


def test_param_count_from_config_is_llama_8b() -> None:
    assert params_from_config(model_shape(LLAMA_8B)) == 8_030_261_248


def test_param_count_from_config_matches_the_checkpoint(untrained_model: Path) -> None:
    report = check_artifact(untrained_model, "cpu")
    config = json.loads((untrained_model / "config.json").read_text())

    assert params_from_config(model_shape(config)) == report.num_params
    exact = estimate(config, 2, 64, 8, num_params=report.num_params)
    assert exact.weight_bytes == 2 * report.num_params
    quantized = estimate(config, 2, 64, 8, weight_bytes=12345)
    assert quantized.weight_bytes == 12345


def test_demo_model_fits_a_small_budget(untrained_model: Path) -> None:
    config = json.loads((untrained_model / "config.json").read_text())
    est = estimate(config, 4, max_model_len=64, max_num_seqs=8, runtime_overhead_bytes=0)

    assert est.total_bytes < 8 * MiB
    check_fit(est, target_bytes=16 * MiB, utilization=0.9)
    check_fit_cpu(est, kvcache_space_gib=1, host_memory_bytes=2 * GiB)


def _suggested(message: str, knob: str) -> float:
    m = re.search(rf"{knob} to ([\d.]+)", message)
    assert m, f"no {knob} suggestion in: {message}"
    return float(m.group(1))


def test_too_long_context_fails_and_each_suggestion_fits() -> None:
    target, util = 24 * GiB, 0.9
    est = estimate(LLAMA_8B, 2, max_model_len=8192, max_num_seqs=32)  # 32 GiB of KV

    with pytest.raises(MemoryFitError) as e:
        check_fit(est, target, util)

    msg = str(e.value)
    assert "> budget 21.60 GiB (0.90 x 24.00 GiB)" in msg
    s = suggest(est, target, util)
    assert s.max_model_len is not None
    assert s.max_num_seqs is not None
    assert _suggested(msg, "max_model_len") == s.max_model_len
    assert _suggested(msg, "max_num_seqs") == s.max_num_seqs
    assert s.max_model_len % 16 == 0
    check_fit(est.with_limits(max_model_len=s.max_model_len), target, util)
    check_fit(est.with_limits(max_num_seqs=s.max_num_seqs), target, util)
    with pytest.raises(MemoryFitError):  # the suggestion is the largest, not just any
        check_fit(est.with_limits(max_model_len=s.max_model_len + 16), target, util)
    assert f"at least {s.target_gib} GiB" in msg
    check_fit(est, s.target_gib * GiB, util)


def test_utilization_suggested_when_it_is_enough() -> None:
    est = estimate(LLAMA_8B, 2, max_model_len=8192, max_num_seqs=4)
    target = math.ceil(est.total_bytes / 0.85)  # fits at 0.85 but not at 0.8

    with pytest.raises(MemoryFitError, match=r"raise gpu_memory_utilization to 0\.85") as e:
        check_fit(est, target, 0.8)

    check_fit(est, target, _suggested(str(e.value), "gpu_memory_utilization"))


def test_weights_alone_too_big_needs_a_bigger_gpu() -> None:
    est = estimate(LLAMA_70B, 2, max_model_len=4096, max_num_seqs=1)

    with pytest.raises(MemoryFitError, match=r"use a GPU with at least 1\d\d GiB") as e:
        check_fit(est, 80 * GiB, 0.9)

    assert "max_model_len" not in str(e.value).split("To fit:")[1]
    assert suggest(est, 80 * GiB, 0.9).max_model_len is None


def test_cpu_kv_cache_over_kvcache_space() -> None:
    est = estimate(LLAMA_8B, 2, max_model_len=4096, max_num_seqs=16)  # 8 GiB of KV

    with pytest.raises(MemoryFitError, match="VLLM_CPU_KVCACHE_SPACE=8") as e:
        check_fit_cpu(est, kvcache_space_gib=4)

    msg = str(e.value)
    check_fit_cpu(est.with_limits(max_model_len=int(_suggested(msg, "max_model_len"))), 4)
    check_fit_cpu(est.with_limits(max_num_seqs=int(_suggested(msg, "max_num_seqs"))), 4)
    check_fit_cpu(est, kvcache_space_gib=8)


def test_cpu_host_memory_too_small_for_the_reservation() -> None:
    est = estimate(LLAMA_8B, 2, max_model_len=2048, max_num_seqs=1)  # 256 MiB of KV

    with pytest.raises(MemoryFitError, match="lower VLLM_CPU_KVCACHE_SPACE to 1") as e:
        check_fit_cpu(est, kvcache_space_gib=16, host_memory_bytes=24 * GiB)

    assert "host memory too small" in str(e.value)
    check_fit_cpu(est, kvcache_space_gib=1, host_memory_bytes=24 * GiB)


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown dtype"):
        dtype_bytes("float12")
    with pytest.raises(ValueError, match="max_model_len"):
        estimate(LLAMA_8B, 2, max_model_len=0, max_num_seqs=1)
    with pytest.raises(ValueError, match="utilization"):
        check_fit(estimate(LLAMA_8B, 2, 16, 1), GiB, 1.5)
