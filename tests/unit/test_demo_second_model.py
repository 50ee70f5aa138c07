"""The demo's second model: its release inputs are valid specs, its fine-tune starts from the
good model's own weights and tokenizer, and a base of another vocabulary is a named error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from infra.demo.__main__ import EXPECTED
from infra.demo.second_model import BROKEN_TUNE, JSON_NAME, JSON_TARGET, json_evaluation
from infra.demo_model_json.train import JsonTrainConfig, train
from infra.errors import TrainingError
from infra.spec import ReleaseSpec
from infra.targets.docker_config import DockerTargetConfig

TINY = {"steps": 3, "n_heldout": 10, "batch_size": 8}


def test_release_specs_of_the_second_model_validate() -> None:
    for evaluation in (json_evaluation(), json_evaluation(threshold=0.0, margin=1.0)):
        spec = ReleaseSpec.model_validate({"model": "/models/extract-json-v1",
                                           "registered_name": JSON_NAME,
                                           "evaluation": evaluation,
                                           "target_settings": JSON_TARGET})  # fmt: skip
        assert spec.serving.served_model_name == JSON_NAME
        assert [s.kind for s in spec.evaluation.scorers] == ["json_schema", "fields"]  # type: ignore[union-attr]
    # its own target: not the default one's name or ports
    default = DockerTargetConfig()
    assert JSON_TARGET["name"] != default.name
    assert JSON_TARGET["router_port"] not in (default.router_port, *default.slot_ports)
    assert EXPECTED["json v1"] == "promoted"
    assert EXPECTED["json v2"] == "rolled_back"


def test_a_fine_tune_starts_from_its_base(tmp_path: Path) -> None:
    base = train(JsonTrainConfig(**TINY), tmp_path / "base").out_dir
    tune = JsonTrainConfig(**{**TINY, **BROKEN_TUNE, "steps": 1, "base": str(base)})
    out = train(tune, tmp_path / "tuned").out_dir
    assert (out / "tokenizer.json").read_bytes() == (base / "tokenizer.json").read_bytes()
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    # one step from the base's weights: close to them, not a fresh random init
    moved = max((after[k] - before[k]).abs().max().item() for k in before)
    assert 0 < moved < 0.05
    info = json.loads((out / "canaryflow_training.json").read_text())
    assert info["config"]["base"] == str(base)
    # another seed builds another vocabulary: its ids would not mean the base's tokens
    other_seed = tune.model_copy(update={"seed": 9})
    with pytest.raises(TrainingError, match="another vocabulary"):
        train(other_seed, tmp_path / "other")


def test_a_base_that_is_not_this_trainers_is_a_named_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    tune = JsonTrainConfig(**{**TINY, "base": str(tmp_path / "not-a-model")})
    with pytest.raises(TrainingError, match="fine-tune a directory this trainer wrote"):
        train(tune, tmp_path / "out")
