"""`canaryflow train-demo --register` against a real MLflow sqlite store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from infra.cli import main

pytestmark = pytest.mark.integration

QUICK = ["--steps", "20", "--n-heldout", "40", "--batch-size", "32"]


def test_trains_registers_and_prints_score_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert (
        main(
            [
                "train-demo",
                *QUICK,
                "--register",
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "a"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "exact match on held-out golden set:" in out
    assert "(0/40)" in out or "/40)" in out
    assert "registered tiny-chat version 1 (aliases: challenger" in out

    # Training is seeded: the same config gives byte-identical files, so the same version.
    assert (
        main(
            [
                "train-demo",
                *QUICK,
                "--register",
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    assert "registered tiny-chat version 1 " in capsys.readouterr().out

    assert (
        main(
            [
                "train-demo",
                *QUICK,
                "--seed",
                "7",
                "--register",
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "c"),
            ]
        )
        == 0
    )
    assert "registered tiny-chat version 2 " in capsys.readouterr().out


def test_unreachable_tracking_uri_fails_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    start = time.monotonic()
    code = main(
        [
            "train-demo",
            *QUICK,
            "--register",
            "--tracking-uri",
            "http://127.0.0.1:9",
            "--out",
            str(tmp_path / "m"),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "RegistryUnreachableError" in err
    assert "127.0.0.1:9" in err
    assert not (tmp_path / "m").exists(), "nothing may be trained or written"
    assert time.monotonic() - start < 30


def test_bad_flag_value_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train-demo", "--num-heads", "4"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings" in err
    assert "num_heads=2" in err
