"""The real ports of a release: the spec's deploy target, MLflow, Locust + Evidently, vLLM.

    ports = real_ports(spec)          # what the release flow uses when given no ports
    ports.target, ports.registry      # make_target(spec.target, **spec.target_settings), MLflow

The step load (Locust + the paired window) is `infra.load.step.LocustStepLoad`, built per
release by `OfflineCheck.step_load`.

Heavy imports (mlflow, torch, docker, evidently) happen inside the functions that need them,
so the controller and its tests import none of them.
"""

from __future__ import annotations

from pathlib import Path

from infra.controller.approval import PrefectApprover
from infra.controller.controls import FileControls
from infra.controller.offline_check import OfflineCheck
from infra.controller.ports import ReleasePorts
from infra.registry import registry_from_uri
from infra.settings import Settings
from infra.spec import ReleaseSpec
from infra.targets import make_target

GOLDEN_FILE = "golden.jsonl"


def real_ports(spec: ReleaseSpec, settings: Settings | None = None) -> ReleasePorts:
    """Target by name (unknown → SpecError), MLflow registry, Locust load, real checks."""
    settings = settings or Settings()
    if spec.target == "docker":
        from infra.targets import docker

        docker.register()
    target = make_target(spec.target, **spec.target_settings)  # this model's own target
    uri = settings.mlflow_uri()
    registry = registry_from_uri(uri)
    check = OfflineCheck(spec, tracking_uri=uri)
    return ReleasePorts(
        target=target,
        registry=registry,
        load=lambda model_dir: check.step_load(target, model_dir, settings.state / "evaluation"),
        check=check,
        images=SmokedImages(
            spec.serving.served_model_name,
            spec.serving.registry if spec.target == "kubernetes" else None,
        ),
        work_dir=settings.state / "releases",
        tracking_uri=uri,
        controls=FileControls(settings.state / "releases"),
        approver=PrefectApprover(),
    )


class SmokedImages:
    """infra/image: content-addressed build (a no-op when it exists), then the smoke test
    under the name the release serves the model as; with a `registry` (target kubernetes,
    serving.registry) the push, and the image the Deployment gets is
    REGISTRY/serving@sha256:… (a refused push is ImagePushError, an ImageBuildError)."""

    def __init__(self, served_model_name: str = "model", registry: str | None = None) -> None:
        self.served_model_name = served_model_name
        self.registry = registry

    def build(self, model_dir: Path) -> str:
        from infra.image.build import build_image
        from infra.image.smoke import smoke_test

        built = build_image(model_dir)
        smoke_test(built.tag, model_dir=model_dir, served_model_name=self.served_model_name)
        if self.registry is None:
            return built.tag
        from infra.image.push import push_image

        return push_image(built.tag, self.registry).reference
