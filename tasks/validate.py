"""Prefect tasks: pre-deploy validation (artifact, memory fit).

Offline quality is the release's evaluation set (validation/evaluation, wired in
infra/controller/wiring.OfflineCheck), not a golden set of the candidate's.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task

from validation import memory
from validation.artifact import ArtifactReport, Flavor, check_artifact


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
