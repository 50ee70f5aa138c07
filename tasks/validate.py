"""Prefect tasks: pre-deploy validation (artifact, memory fit, golden-set quality)."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from infra.local_generator import TransformersGenerator
from validation import memory, quality
from validation.artifact import ArtifactReport, Flavor, check_artifact
from validation.golden import Example


@task(name="validate-artifact", timeout_seconds=300)
def validate_artifact(model_dir: Path, flavor: Flavor) -> ArtifactReport:
    """Files, config, architecture, tokenizer, safetensors headers, manifest."""
    return check_artifact(model_dir, flavor)


@task(name="check-memory-fit", timeout_seconds=60)
def check_memory_fit(
    report: ArtifactReport, max_model_len: int, max_num_seqs: int, kvcache_space_gib: float
) -> memory.MemoryEstimate:
    """Weights + KV cache against the serving memory budget (CPU flavor: the KV space)."""
    return memory.check_model_fit_cpu(
        report.model_dir, report.weight_bytes, max_model_len, max_num_seqs, kvcache_space_gib
    )


@task(name="score-golden-set", timeout_seconds=1800)
def score_golden_set(model_dir: Path, examples: list[Example]) -> quality.QualityScore:
    """Offline greedy exact match of the model on the golden set."""
    return quality.score(TransformersGenerator(model_dir), examples)


@task(name="quality-gate")
def quality_gate(
    candidate: quality.QualityScore,
    threshold: float,
    champion: quality.QualityScore | None,
    max_regression: float,
) -> quality.GateResult:
    """Pass only above the threshold and not regressed beyond δ against the champion."""
    result = quality.gate(candidate, threshold, champion, max_regression)
    quality.raise_if_failed(result)
    return result
