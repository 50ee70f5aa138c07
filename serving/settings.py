"""Typed serving settings, read from `CANARYFLOW_SERVING_*` environment variables.

Two layers: `MiddlewareSettings` (what the ASGI middleware inside the vLLM process needs:
variant, model version, capture, redaction, readiness) and `ServingSettings` (adds what the
launcher turns into `python -m vllm.entrypoints.openai.api_server` flags and environment).
Field descriptions are the help text. The pipeline imports this module to render a
container's environment, so it depends only on pydantic and pydantic-settings.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.errors import ServingSettingsError

ENV_PREFIX = "CANARYFLOW_SERVING_"
MIDDLEWARE_IMPORT_PATH = "serving.middleware.CanaryflowMiddleware"
# Applied in order to every prompt/completion/error text; a completion is redacted after its
# stream deltas are joined, so a key split over chunks is still caught.
DEFAULT_REDACT_PATTERNS = [
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",  # e-mail addresses
    # Bearer/prefixed keys must hold a digit: "bearer instruments", "key_performance_…" stay.
    r"(?i)\bbearer\s+(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}",  # Authorization: Bearer …
    # key=value credentials: api_key=…, "token": "…", password: …, aws_secret_access_key=…
    r"(?i)\b(?:[a-z]+[_-])?(?:api[_-]?key|secret(?:[_-]access)?[_-]?key|secret|token|"
    r"passw(?:or)?d)\b[\"']?\s*[:=]\s*[\"']?[^\s\"',;]{6,}",
    r"(?<![A-Za-z0-9])(?:sk|pk|rk|api|key|tok)[-_](?=[A-Za-z_-]*\d)[A-Za-z0-9_-]{16,}",  # sk-…
    r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{20,}",  # Hugging Face tokens
    r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Z0-9])",  # AWS access key ids
    r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})",  # GitHub
    r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
]

Dtype = Literal["auto", "float32", "bfloat16", "float16"]


class MiddlewareSettings(BaseSettings):
    """What the capture/request-id middleware reads inside the vLLM server process."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    variant: str = Field(
        "stable",
        pattern=r"^[a-z0-9][a-z0-9-]{0,31}$",
        description="Traffic variant this server plays (stable, canary, ...); sent as a header.",
    )
    model_version: str = Field(
        "unknown", max_length=64, description="Registry version served; sent as a header."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port the API server listens on.")
    ready_file: Path | None = Field(
        None,
        description="While set and absent, /health answers 503 (the launcher creates it after "
        "warmup). Unset: /health is vLLM's own.",
    )
    capture_dir: Path | None = Field(
        None, description="Directory for the JSONL capture files; unset disables capture."
    )
    capture_paths: list[str] = Field(
        default_factory=lambda: ["/v1/chat/completions", "/v1/completions"],
        description="Request paths whose request/response pairs are captured.",
    )
    capture_max_bytes: int = Field(
        64 << 20, ge=4096, description="Rotate the capture file when it would pass this size."
    )
    capture_backups: int = Field(
        4, ge=0, description="Rotated capture files kept per process; older ones are deleted."
    )
    capture_min_free_bytes: int = Field(
        64 << 20, ge=0, description="Drop records (and count them) when the disk has less free."
    )
    capture_queue_size: int = Field(
        1000, ge=1, description="Records waiting for the writer; beyond it records are dropped."
    )
    capture_max_body_bytes: int = Field(
        256 << 10, ge=1024, description="Request/response bytes kept per record (then truncated)."
    )
    redact_patterns: list[str] = Field(
        default_factory=lambda: list(DEFAULT_REDACT_PATTERNS),
        description="Regexes replaced in prompts and completions before a record is written "
        "(env: a JSON list).",
    )
    redact_replacement: str = Field("[REDACTED]", description="What a redacted match becomes.")

    @field_validator("redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"redact pattern {pattern!r} is not a valid regex: {exc}") from exc
        return patterns


class ServingSettings(MiddlewareSettings):
    """Everything the launcher needs to start vLLM; env prefix `CANARYFLOW_SERVING_`."""

    model_dir: Path = Field(Path("/models/model"), description="Model directory to serve.")
    served_model_name: str = Field(
        "tiny-chat", min_length=1, description="Name clients pass as `model`."
    )
    host: str = Field("0.0.0.0", description="Address the API server binds.")  # noqa: S104
    max_model_len: int | None = Field(
        None, ge=16, description="Context length; unset: the model config's."
    )
    dtype: Dtype = Field("auto", description="Weight/activation dtype passed to vLLM.")
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="Share of GPU memory vLLM may use (GPU flavor)."
    )
    api_key: SecretStr | None = Field(
        None, description="API key guarding /v1; prefer api_key_file (a mounted secret)."
    )
    api_key_file: Path | None = Field(
        None, description="File holding the API key (used when api_key is unset)."
    )
    allow_no_api_key: bool = Field(
        False, description="Serve /v1 without a key when none is configured (tests only)."
    )
    enforce_eager: bool | None = Field(
        None,
        description="Skip torch.compile (--enforce-eager and TORCH_COMPILE_DISABLE=1). Unset: "
        "eager exactly when no C++ compiler is on PATH (torch inductor needs one on CPU; the "
        "serving image has none).",
    )
    cpu_threads_bind: str = Field(
        "auto", description="VLLM_CPU_OMP_THREADS_BIND: 'auto', 'nobind' or cores like '0-1'."
    )
    cpu_kvcache_space_gib: int | None = Field(
        None, ge=1, description="VLLM_CPU_KVCACHE_SPACE in GiB; unset: vLLM's default (4)."
    )
    warmup: bool = Field(True, description="Send one completion before reporting ready.")
    warmup_prompt: str = Field("1+1", description="User message of the warmup request.")
    warmup_max_tokens: int = Field(4, ge=1, description="max_tokens of the warmup request.")
    startup_timeout_s: float = Field(
        900, gt=0, description="Seconds vLLM may take to answer before the launch fails."
    )
    uvicorn_log_level: Literal["critical", "error", "warning", "info", "debug"] = Field(
        "info", description="Log level of the HTTP server."
    )
    extra_args: list[str] = Field(
        default_factory=list, description="Further vLLM flags, appended verbatim (JSON list)."
    )

    def vllm_args(self) -> list[str]:
        """The api_server flags; never contains the API key (it goes by environment)."""
        args = [
            "--model", str(self.model_dir),
            "--served-model-name", self.served_model_name,
            "--host", self.host,
            "--port", str(self.port),
            "--dtype", self.dtype,
            "--gpu-memory-utilization", str(self.gpu_memory_utilization),
            "--uvicorn-log-level", self.uvicorn_log_level,
            "--middleware", MIDDLEWARE_IMPORT_PATH,
        ]  # fmt: skip
        if self.max_model_len is not None:
            args += ["--max-model-len", str(self.max_model_len)]
        if self.eager():
            args.append("--enforce-eager")
        return args + list(self.extra_args)

    def eager(self) -> bool:
        """Whether vLLM runs without compilation (see `enforce_eager`)."""
        if self.enforce_eager is not None:
            return self.enforce_eager
        return not any(shutil.which(cc) for cc in ("c++", "g++"))

    def vllm_env(self) -> dict[str, str]:
        """Environment for the vLLM process, without the key (see `resolve_api_key`)."""
        env = {
            "VLLM_CPU_OMP_THREADS_BIND": self.cpu_threads_bind,
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        if self.cpu_kvcache_space_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kvcache_space_gib)
        if self.eager():
            # --enforce-eager covers the model, not vLLM's op-level @torch.compile helpers:
            # the first request for prompt logprobs (chat `echo`, `prompt_logprobs`) compiles
            # one with inductor, which without a C++ compiler kills the engine for everyone.
            env["TORCH_COMPILE_DISABLE"] = "1"
        return env

    def resolve_api_key(self) -> str | None:
        """The key from `api_key`, else from `api_key_file`; None only when allowed."""
        if self.api_key is not None and self.api_key.get_secret_value():
            return self.api_key.get_secret_value()
        if self.api_key_file is not None and self.api_key_file.is_file():
            key = self.api_key_file.read_text().strip()
            if not key:
                raise ServingSettingsError(f"API key file {self.api_key_file} is empty")
            return key
        if self.allow_no_api_key:
            return None
        where = f" ({self.api_key_file} does not exist)" if self.api_key_file else ""
        raise ServingSettingsError(
            f"no API key{where}: mount the key file at {ENV_PREFIX}API_KEY_FILE, set "
            f"{ENV_PREFIX}API_KEY, or set {ENV_PREFIX}ALLOW_NO_API_KEY=true to serve without one"
        )

    def to_env(self, *, include_secrets: bool = False) -> dict[str, str]:
        """These settings as `CANARYFLOW_SERVING_*` variables (for a container or a child)."""
        env: dict[str, str] = {}
        for name, value in self.model_dump().items():
            if value is None or (name == "api_key" and not include_secrets):
                continue
            env[ENV_PREFIX + name.upper()] = _env_value(value)
        return env


def _env_value(value: Any) -> str:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)
