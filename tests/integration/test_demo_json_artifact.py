"""The JSON-extraction demo model (Qwen2) and its broken fine-tune pass the artifact checks a
release runs: both are well-formed Qwen2 directories vLLM CPU can load (head_dim 64), so a
release can tell them apart only by their answers. Those answers, served by vLLM and judged
by the JSON scorers, are tests/e2e/test_release_json_model.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.demo_model_json.train import TRAINING_INFO_FILE
from tests.fixtures import models
from validation.artifact import check_artifact

pytestmark = pytest.mark.integration

VARIANTS: dict[str, Callable[[], Path]] = {
    "good": models.trained_json,
    "broken": models.broken_json_fine_tune,
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_artifact_checks_pass(variant: str) -> None:
    model_dir = VARIANTS[variant]()
    report = check_artifact(model_dir, "cpu")
    assert report.architecture == "Qwen2ForCausalLM"
    assert report.head_dim == 64
    assert report.shapes_checked
    # measured offline at training time (transformers, held-out set): the good one answers
    # JSON, the fine-tune that broke it never does
    info = json.loads((model_dir / TRAINING_INFO_FILE).read_text())
    if variant == "good":
        assert info["json_valid"] >= 0.95, info
        assert info["field_accuracy"] >= 0.8, info
    else:
        assert info["json_valid"] == 0.0, info
