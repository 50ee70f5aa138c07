from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.fixtures import models

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def untrained_model(tmp_path: Path) -> Path:
    """A writable copy of a random-weight demo model (break it as you like)."""
    return models.untrained(tmp_path / "model")


@pytest.fixture(scope="session")
def trained_model() -> Path:
    """The trained demo model directory; treat as read-only (copy before changing)."""
    return models.trained()
