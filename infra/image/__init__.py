"""The serving image: host-side wheelhouse, content-addressed Docker build, smoke test.

from infra.image import build_image, smoke_test
built = build_image(model_dir)           # BuiltImage; built=False when the tag existed
report = smoke_test(built.tag)           # SmokeReport; raises SmokeTestError
"""

from infra.image.build import BuiltImage, build_image
from infra.image.errors import ImageBuildError, SmokeTestError
from infra.image.smoke import Probe, SmokeReport, smoke_test

__all__ = [
    "BuiltImage",
    "ImageBuildError",
    "Probe",
    "SmokeReport",
    "SmokeTestError",
    "build_image",
    "smoke_test",
]
