"""Train the demo model, check it like any candidate, and register it in the model registry."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from infra.demo_model.train import TrainConfig, TrainResult, train
from infra.gitinfo import git_sha
from infra.registry import CHALLENGER, ModelVersion, registry_from_uri
from infra.settings import Settings
from validation.artifact import ArtifactReport, check_artifact


def data_hash(config: TrainConfig) -> str:
    """The training data is generated: its hash is the hash of what generates it."""
    return hashlib.sha256(
        config.task.model_dump_json().encode() + f"seed={config.seed}".encode()
    ).hexdigest()[:16]


def candidate_tags(config: TrainConfig, result: TrainResult) -> dict[str, str]:
    """Provenance and metrics written on the registered version."""
    return {
        "canaryflow.git_sha": git_sha(Path(__file__).parent),
        "canaryflow.data_hash": data_hash(config),
        "canaryflow.task": config.task.model_dump_json(),
        "canaryflow.train_config": config.model_dump_json(),
        "metric.exact_match": f"{result.exact_match:.4f}",
        "metric.n_eval": str(result.n_eval),
        "metric.train_seconds": f"{result.seconds:.1f}",
        "metric.final_loss": f"{result.final_loss:.4f}",
    }


@dataclass(frozen=True)
class CandidateReport:
    """What `train-demo` did, printed for the person who ran it."""

    result: TrainResult
    artifact: ArtifactReport
    version: ModelVersion | None

    def __str__(self) -> str:
        r = self.result
        correct = round(r.exact_match * r.n_eval)
        lines = [
            f"trained {self.artifact.architecture} ({self.artifact.num_params:,} params, "
            f"head_dim {self.artifact.head_dim}) in {r.seconds:.0f} s, {r.steps} steps",
            f"exact match on held-out golden set: {r.exact_match:.1%} ({correct}/{r.n_eval})",
            f"model directory: {r.out_dir}",
        ]
        if self.version is not None:
            v = self.version
            lines.append(
                f"registered {v.name} version {v.version} (aliases: "
                f"{', '.join(v.aliases) or 'none'}; digest {v.digest[:12]})"
            )
        return "\n".join(lines)


def train_and_register(
    config: TrainConfig,
    *,
    out_dir: Path | None = None,
    register: bool = False,
    name: str = "tiny-chat",
    alias: str | None = CHALLENGER,
    tracking_uri: str | None = None,
) -> CandidateReport:
    """Train → artifact checks (cpu flavor) → optionally register with tags and alias.

    The registry is opened (and its reachability checked) before training starts, so an
    unreachable tracking URI fails in seconds, not after minutes of training.
    """
    settings = Settings()
    registry = registry_from_uri(tracking_uri or settings.mlflow_uri()) if register else None
    out_dir = out_dir or settings.models_dir() / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = train(config, out_dir)
    artifact = check_artifact(out_dir, "cpu")
    version = None
    if registry is not None:
        version = registry.register(name, out_dir, candidate_tags(config, result), alias=alias)
    return CandidateReport(result, artifact, version)
