"""MLflow experiments that keep their artifacts next to a sqlite store.

MLflow's default artifact location is `./mlruns` under the current directory, so a run
logged against `sqlite:///dir/mlflow.db` from elsewhere would scatter artifacts; every
canaryflow experiment (releases, retraining, evaluation) is created with its artifacts in
`dir/artifacts` instead, as the registry does. Works with an `MlflowClient` or the
`mlflow` module (both have `get_experiment_by_name` and `create_experiment`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def experiment_id(
    client: Any, name: str, tracking_uri: str, artifact_root: Path | None = None
) -> str:
    """The id of experiment `name`, created when missing with its artifacts in
    `artifact_root`, else beside a sqlite store, else where MLflow puts them."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    root = artifact_root
    if root is None and tracking_uri.startswith("sqlite:///"):
        root = Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / "artifacts"
    location = None if root is None else root.resolve().as_uri()
    return str(client.create_experiment(name, artifact_location=location))
