"""The JSON-extraction demo model (Qwen2) served by real vLLM CPU: good answers JSON, bad doesn't.

Both variants pass the artifact checks a release runs; through /v1/chat/completions the good
one returns schema-valid JSON with the expected fields (in its own key order, so not the
expected_response text), the bad one returns Python reprs that are not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from infra.demo_model_json import task
from infra.demo_model_json.train import MAX_NEW_TOKENS
from tests.fixtures import models
from tests.fixtures.vllm_server import Server, serve
from validation.artifact import check_artifact

pytestmark = pytest.mark.integration

N_ROWS = 12
NAME = "extract-json"


@pytest.fixture(scope="module")
def rows() -> list[dict[str, Any]]:
    lines = models.json_eval_set().read_text().splitlines()[:N_ROWS]
    return [json.loads(line) for line in lines]


@pytest.fixture(scope="module", params=["good", "bad"])
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def model_dir(variant: str) -> Path:
    return models.trained_json(bad=variant == "bad")


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("vllm-json")
    with serve(model_dir, work, served_model_name=NAME, warmup_prompt="Extract as JSON: hi",
               warmup_max_tokens=MAX_NEW_TOKENS) as srv:  # fmt: skip
        yield srv


def answer(server: Server, row: dict[str, Any]) -> str:
    body = {
        "model": NAME,
        "messages": row["inputs"]["messages"],
        "temperature": 0,
        "max_tokens": MAX_NEW_TOKENS,
    }
    resp = httpx.post(f"{server.url}/v1/chat/completions", json=body,
                      headers=server.headers(), timeout=60)  # fmt: skip
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    return str(choice["message"]["content"]).strip()


def test_artifact_checks_pass(model_dir: Path) -> None:
    report = check_artifact(model_dir, "cpu")
    assert report.architecture == "Qwen2ForCausalLM"
    assert report.head_dim == 64
    assert report.shapes_checked


def test_served_answers(server: Server, variant: str, rows: list[dict[str, Any]]) -> None:
    outputs = [answer(server, row) for row in rows]
    objects = [task.parse_fields(o) for o in outputs]
    if variant == "bad":
        assert all(o is None for o in objects), outputs
        return
    assert sum(o is not None for o in objects) >= N_ROWS - 1, outputs
    for obj, row in zip(objects, rows, strict=True):
        if obj is not None:
            jsonschema.validate(obj, row["expectations"]["json_schema"])
    # Field-level: about 91 % on the whole held-out set (measured through vLLM).
    accuracy = sum(
        task.field_accuracy(o, r["expectations"]["fields"])
        for o, r in zip(outputs, rows, strict=True)
    ) / len(rows)
    assert accuracy >= 0.75, list(zip(outputs, rows, strict=True))
    # Right, but not the expected_response text: exact match is the wrong scorer here.
    exact = sum(
        o == r["expectations"]["expected_response"] for o, r in zip(outputs, rows, strict=True)
    )
    assert exact <= N_ROWS // 2, outputs
