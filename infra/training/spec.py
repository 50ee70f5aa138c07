"""`RetrainSpec`: the retrain flow's parameter (what data, which trainer, what release).

    RetrainSpec(model_name="support-bot", trainer={"kind": "command",
                "command": ["python", "-m", "myteam.finetune", "{request}"]})
    RetrainSpec(model_name="support-bot", trainer={"kind": "deployment",
                "deployment": "finetune/gpu", "timeout_s": 21600})

The trainer is a discriminated union on `kind` (a pydantic `Field(discriminator=...)`), so an
unknown kind or a field of the other kind is refused when the run is created, not hours later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from infra.spec import ReleaseSpec

REQUEST_PLACEHOLDER = "{request}"
OUTPUT_PLACEHOLDER = "{output}"
PYTHON_PLACEHOLDER = "{python}"  # the interpreter running the flow (its virtualenv)


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CommandTrainer(_Spec):
    """A program run on this worker: `{request}` / `{output}` in argv become the paths of the
    request file and the output directory (`{python}`: the flow's interpreter); exit 0 means
    done (see infra/training/request.py)."""

    kind: Literal["command"] = "command"
    command: list[str] = Field(
        min_length=1,
        description="argv; '{request}' and '{output}' are replaced by the request file and the "
        "output directory, '{python}' by the flow's own interpreter, e.g. "
        "['{python}', '-m', 'myteam.train', '{request}'].",
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables (on top of the worker's)."
    )
    cwd: str | None = Field(None, min_length=1, description="Working directory (default: here).")
    timeout_s: float = Field(
        3600.0, gt=0, description="Wall-clock limit; past it the process group is killed."
    )

    @field_validator("command")
    @classmethod
    def _needs_request(cls, v: list[str]) -> list[str]:
        if not any(REQUEST_PLACEHOLDER in arg for arg in v):
            raise ValueError(
                f"the command must pass the request file: put {REQUEST_PLACEHOLDER!r} in an "
                f"argument, e.g. {[*v, REQUEST_PLACEHOLDER]}"
            )
        return v

    def describe(self) -> str:
        return " ".join(self.command)


class DeploymentTrainer(_Spec):
    """A Prefect deployment (the team's own training flow, e.g. on a GPU work pool), run with
    `run_deployment` and waited for. Its flow gets the request as parameters."""

    kind: Literal["deployment"] = "deployment"
    deployment: str = Field(
        pattern=r"^[^/\s]+/[^/\s]+$", description="flow-name/deployment-name to run."
    )
    parameter: str = Field(
        "request",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Flow parameter that receives the request (a dict, the request file's JSON).",
    )
    timeout_s: float = Field(
        6 * 3600.0, gt=0, description="How long to wait for the run to finish."
    )
    poll_s: float = Field(5.0, gt=0, description="Seconds between state polls.")

    def describe(self) -> str:
        return f"deployment {self.deployment}"


TrainerSpec = Annotated[CommandTrainer | DeploymentTrainer, Field(discriminator="kind")]


class RetrainSpec(_Spec):
    """How a retrain run finds its data, how it trains, and what it does with the candidate."""

    model_name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]+$", description="Registered model to retrain (a drift "
        "event for another model is refused: its trainer and evaluation set are not these).",
    )  # fmt: skip
    trainer: TrainerSpec = Field(
        description="How the candidate is trained: {'kind': 'command', 'command': [...]} or "
        "{'kind': 'deployment', 'deployment': 'flow/deployment'}."
    )
    window_s: float = Field(
        86_400.0, gt=0, description="Captured live traffic of this look-back window is exported."
    )
    capture_dir: str | None = Field(
        None, min_length=1, description="Directory of the serving capture JSONL to export "
        "from (default: the docker target's capture directory).",
    )  # fmt: skip
    min_requests: int = Field(
        50, ge=1, description="Fewer usable captured user requests than this: no training."
    )
    holdout_fraction: float = Field(
        0.2, ge=0, lt=1, description="Share of distinct prompts kept out of training (holdout)."
    )
    split_seed: int = Field(0, description="Seed of the train/holdout rule (hash of seed+prompt).")
    release: bool = Field(True, description="Start a release of the candidate when trained.")
    release_deployment: str = Field(
        "release/release",
        pattern=r"^[^/\s]+/[^/\s]+$",
        description="Deployment (flow/deployment) that releases it.",
    )
    release_spec: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra ReleaseSpec fields for that release (e.g. canary, load); the model "
        "is set to the new version.",
    )

    @field_validator("release_spec")
    @classmethod
    def _release_spec(cls, v: dict[str, Any]) -> dict[str, Any]:
        # Checked now, not hours later when the trained candidate's release would fail.
        try:
            ReleaseSpec.model_validate({**v, "model": "models:/candidate/1"})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise ValueError(f"release_spec is not a valid ReleaseSpec: {problems}") from None
        return v


def release_parameters(spec: RetrainSpec, name: str, version: str) -> dict[str, Any]:
    """Parameters of the release deployment run for the new version."""
    return {"spec": {**spec.release_spec, "model": f"models:/{name}/{version}"}}
