"""Model registry: the contract (base.py), MLflow (mlflow_registry.py), in-memory (fake.py).

`registry_from_uri` picks the backend from a URI and refuses schemes it does not know.
"""

from __future__ import annotations

from urllib.parse import urlparse

from infra.errors import RegistryError
from infra.registry.base import CHALLENGER, CHAMPION, ModelRegistry, ModelVersion
from infra.registry.fake import FakeRegistry

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "FakeRegistry",
    "ModelRegistry",
    "ModelVersion",
    "registry_from_uri",
]

_MLFLOW_SCHEMES = frozenset({"sqlite", "http", "https", "postgresql", "mysql", "mssql"})


def registry_from_uri(uri: str) -> ModelRegistry:
    """`memory://` → FakeRegistry; sqlite/http(s)/postgresql/mysql/mssql → MlflowRegistry."""
    scheme = urlparse(uri).scheme.split("+")[0]  # postgresql+psycopg2 → postgresql
    if scheme == "memory":
        return FakeRegistry()
    if scheme in _MLFLOW_SCHEMES:
        # Imported here: mlflow takes ~2 s to import, and unit tests only need the fake.
        from infra.registry.mlflow_registry import MlflowRegistry

        return MlflowRegistry(uri)
    raise RegistryError(
        f"no registry backend for {uri!r}: use sqlite:///PATH/mlflow.db, http(s)://HOST:PORT "
        f"(an MLflow server), a SQL database URI ({', '.join(sorted(_MLFLOW_SCHEMES))}), "
        "or memory:// for tests"
    )
