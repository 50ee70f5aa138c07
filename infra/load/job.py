"""What the pipeline hands the locustfile: a JSON file named by an environment variable.

The API key travels only in the environment of the Locust process (`API_KEY_ENV`): never
on its command line (visible in `ps`), never in this file or any output.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

JOB_ENV = "CANARYFLOW_LOAD_JOB"
API_KEY_ENV = "CANARYFLOW_LOAD_API_KEY"  # not LOCUST_*: Locust would read it as an option


class LoadJob(BaseModel):
    """One Locust run's settings, as the locustfile reads them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str = Field(description="Served model name sent as `model`.")
    prompts_file: Path = Field(description="Resolved prompts, JSONL (see prompts.py).")
    results_file: Path = Field(description="Where one JSONL record per request is appended.")
    requests: int | None = Field(
        None, ge=1, description="Stop after this many requests; None: only the run time stops."
    )
    max_tokens: int = Field(16, ge=1, description="max_tokens of every request.")
    stream: bool = Field(True, description="Ask for SSE streaming (measures TTFT).")
    request_timeout_s: float = Field(60.0, gt=0, description="Per-request network timeout.")
    seed: int = Field(
        0, description="Seed of the prompt order (see prompts.PromptOrder); the runner draws "
        "a fresh one per run and records it in load-job.json.",
    )  # fmt: skip
