"""Where the serving image is pushed for target kubernetes (no engine needed; the push itself
runs against a real registry in tests/e2e/test_image_push.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.errors import ImageBuildError, ImagePushError
from infra.image.push import PushedImage, remote_tag
from infra.spec import ServingSpec

DIGEST = "sha256:" + "ab" * 32


def test_the_remote_tag_keeps_the_content_tag_under_the_registry_path() -> None:
    assert remote_tag("canaryflow/serving:cpu-1", "reg.example:5000/llm/") == (
        "reg.example:5000/llm/serving:cpu-1"
    )
    assert (
        remote_tag("canaryflow/serving:cpu-1", "127.0.0.1:5000") == "127.0.0.1:5000/serving:cpu-1"
    )


@pytest.mark.parametrize("bad", ["https://reg.example", "reg.example/Upper", "reg.example:x"])
def test_bad_registry_addresses_are_refused_before_any_call(bad: str) -> None:
    with pytest.raises(ImagePushError, match="not a registry address"):
        remote_tag("canaryflow/serving:cpu-1", bad)
    with pytest.raises(ValidationError, match="registry"):
        ServingSpec(registry=bad)


def test_the_deployment_gets_the_digest_reference() -> None:
    pushed = PushedImage("reg.example:5000/llm/serving:cpu-1", DIGEST, 123)
    assert pushed.reference == f"reg.example:5000/llm/serving@{DIGEST}"
    assert issubclass(ImagePushError, ImageBuildError)  # the release rejects before deploy
    assert ServingSpec(registry="reg.example:5000/llm").registry == "reg.example:5000/llm"
