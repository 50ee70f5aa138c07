"""tests/e2e/kind.sh: skips cleanly (exit 0, a reason) where kind is missing; runs where not."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("kind.sh")


def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=3600,
    )


def test_script_parses() -> None:
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_kind_it_explains_itself_and_exits_0() -> None:
    result = run({"KIND": "/nonexistent/kind"})
    assert result.returncode == 0, result.stderr
    assert "SKIP: kind is not installed (/nonexistent/kind not on PATH)" in result.stdout
    assert "runs a full release on a local kind cluster" in result.stdout


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("kind") is None, reason="kind is not installed")
def test_full_release_on_kind() -> None:
    result = run({})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "PASS: tests/e2e/kind.sh" in result.stdout or "SKIP:" in result.stdout
