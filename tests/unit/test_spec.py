from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.spec import ReleaseSpec


def test_defaults_are_the_embedded_demo() -> None:
    spec = ReleaseSpec(model="models:/tiny-chat@challenger")
    assert spec.target == "docker"
    assert spec.canary.steps == [10, 25, 50]
    assert spec.model_ref() == ("tiny-chat", None, "challenger")
    assert ReleaseSpec(model="models:/m/3").model_ref() == ("m", "3", None)
    assert ReleaseSpec(model="/data/model", registered_name="x").model_ref() == ("x", None, None)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"model": "models:/tiny chat@x"}, "is not models:/NAME/VERSION"),
        ({"model": "models:/m@a", "target": "nomad"}, "target"),
        ({"model": "models:/m@a", "canary": {"steps": [50, 10]}}, "increase strictly"),
        ({"model": "models:/m@a", "canary": {"steps": [10, 100]}}, "100 is the promote"),
        ({"model": "models:/m@a", "canary": {"steps": []}}, "at least one weight"),
        ({"model": "models:/m@a", "serving": {"flavor": "gpu"}}, "needs gpus >= 1"),
        ({"model": "models:/m@a", "load": {"prompts": "replay"}}, "needs load.replay_file"),
        ({"model": "models:/m@a", "serving": {"max_model_len": 4}}, "max_model_len"),
        ({"model": "models:/m@a", "canary": {"policy": {"alpha": 2}}}, "alpha"),
        ({"model": "models:/m@a", "typo_field": 1}, "typo_field"),
    ],
)
def test_bad_values_fail_before_anything_runs(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ReleaseSpec.model_validate(data)
