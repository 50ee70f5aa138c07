"""Where canaryflow keeps its state on this machine; every path is overridable by env."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state() -> Path:
    system = Path("/var/lib/canaryflow")
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    return Path.home() / ".local" / "state" / "canaryflow"


class Settings(BaseSettings):
    """Machine-level settings (env prefix CANARYFLOW_, e.g. CANARYFLOW_STATE=/data/cf)."""

    model_config = SettingsConfigDict(env_prefix="CANARYFLOW_", extra="ignore")

    state: Path = Field(default_factory=_default_state, description="Root of all run state.")
    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI; default: sqlite store under the state dir "
        "(MLFLOW_TRACKING_URI is honoured when this is unset).",
    )

    def mlflow_uri(self) -> str:
        if self.tracking_uri:
            return self.tracking_uri
        if env := os.environ.get("MLFLOW_TRACKING_URI"):
            return env
        db = self.state / "mlflow" / "mlflow.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{db}"

    def models_dir(self) -> Path:
        return self.state / "models"
