"""`canaryflow release SPEC`: what it submits, and what it refuses before submitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main
from infra.errors import SpecError
from infra.githook.errors import SpecInvalidError
from infra.release_cli import spec_params


def test_a_spec_file_is_validated_and_its_relative_paths_anchored_to_it(tmp_path: Path) -> None:
    (tmp_path / "models" / "mine").mkdir(parents=True)
    spec = tmp_path / "deploy" / "release.yaml"
    spec.parent.mkdir()
    spec.write_text("model: ../models/mine\nregistered_name: support-bot\n"
                    "evaluation: {path: eval/set.jsonl}\ncanary: {steps: [20, 60]}\n")  # fmt: skip
    params = spec_params(str(spec))
    assert params["model"] == str((tmp_path / "models" / "mine").resolve())
    assert params["evaluation"]["path"] == str((spec.parent / "eval" / "set.jsonl").resolve())
    assert params["canary"] == {"steps": [20, 60]}  # only what the file says: defaults stay
    assert params["registered_name"] == "support-bot"


def test_a_registry_reference_or_a_directory_is_a_spec_of_its_own(tmp_path: Path) -> None:
    assert spec_params("models:/support-bot/7") == {"model": "models:/support-bot/7"}
    assert spec_params("models:/support-bot@challenger") == {
        "model": "models:/support-bot@challenger"
    }
    assert spec_params(str(tmp_path)) == {"model": str(tmp_path.resolve())}


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("nowhere/release.yaml", "no such spec file"),
        ("support-bot", "neither a spec file"),
        ("models:/support-bot", "is not models:/NAME/VERSION"),
    ],
)
def test_what_is_not_a_spec_is_refused_naming_it(given: str, says: str) -> None:
    with pytest.raises(SpecError, match=says):
        spec_params(given)


def test_an_invalid_spec_file_names_every_field_error(tmp_path: Path) -> None:
    spec = tmp_path / "release.json"
    spec.write_text('{"model": "models:/a/1", "canary": {"steps": [0, 150]}, "colour": 1}')
    with pytest.raises(SpecInvalidError, match=r"canary\.steps.*colour|colour.*canary\.steps"):
        spec_params(str(spec))


def test_the_command_exits_2_on_a_bad_spec_and_submits_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens
    assert main(["release", str(tmp_path / "missing.yaml"), "--watch"]) == 2
    assert "no such spec file" in capsys.readouterr().err


def test_no_prefect_server_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    assert main(["release", "models:/support-bot/7"]) == 1
    err = capsys.readouterr().err
    assert "no Prefect server answers at http://127.0.0.1:9/api" in err
    assert "make services" in err
