"""Prefect tasks: build the serving image for a model and smoke-test it."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from infra.image.build import BuiltImage, build_image
from infra.image.smoke import SmokeReport, smoke_test


@task(name="build-image", retries=1, retry_delay_seconds=10, timeout_seconds=1800)
def build_serving_image(model_dir: Path) -> BuiltImage:
    """Content-addressed serving image (cpu flavor, model baked); a no-op when it exists."""
    return build_image(model_dir)


@task(name="smoke-test-image", timeout_seconds=900)
def smoke_test_image(image: str, model_dir: Path) -> SmokeReport:
    """Run the image: healthy, models listed, a correct answer, 401 without key, 4xx on junk."""
    return smoke_test(image, model_dir=model_dir)
