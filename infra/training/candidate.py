"""From a trainer's answer to a checked, registered candidate with its lineage tags.

    model = checked_model(result, registry, work_dir, flavor="cpu", trainer="command …")
    version = register_candidate(registry, name, model, tags, champion_version="3")

A model directory (or a version the trainer registered, downloaded and verified first) must
pass `check_artifact`; any failure is a TrainerOutputError that quotes the check (a missing
file is named) and nothing is registered. Lineage tags are written with `set_tags`, so a
version the trainer registered itself, or content registered before, carries them too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.errors import ArtifactError, RegistryError, TrainerOutputError, ValidationError
from infra.registry.base import CHALLENGER, ModelRegistry, ModelVersion
from infra.training.request import TrainerResult
from validation import manifest
from validation.artifact import ArtifactReport, Flavor, check_artifact

log = logging.getLogger("canaryflow.training")

_URI = re.compile(r"^models:/(?P<name>[A-Za-z0-9_.-]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class CheckedModel:
    """A trained model that passed the artifact checks; `registered` if the trainer did it."""

    model_dir: Path
    report: ArtifactReport
    registered: ModelVersion | None = None


def checked_model(
    result: TrainerResult, registry: ModelRegistry, work_dir: Path, *, flavor: Flavor,
    trainer: str,
) -> CheckedModel:  # fmt: skip
    """The trainer's model, checked like any candidate; TrainerOutputError otherwise."""
    registered = None
    if result.model_uri is not None:
        m = _URI.match(result.model_uri)
        if m is None:  # TrainerResult's pattern already refuses this; kept for direct callers
            raise TrainerOutputError(f"{trainer} returned {result.model_uri!r}, not models:/N/V")
        try:
            registered = registry.get(m["name"], m["version"])
            model_dir = registry.download(m["name"], m["version"], work_dir / "registered")
        except (RegistryError, ArtifactError) as exc:
            raise TrainerOutputError(
                f"{trainer} returned {result.model_uri}, which cannot be fetched: {exc}"
            ) from exc
    else:
        model_dir = Path(str(result.model_dir))
        if model_dir.resolve().is_relative_to(work_dir.resolve()):  # ours to tidy, not a user's
            _drop_inherited_manifest(model_dir, trainer)
    try:
        report = check_artifact(model_dir, flavor)
    except ValidationError as exc:
        raise TrainerOutputError(
            f"{trainer} produced {model_dir}, which is not a servable model "
            f"({type(exc).__name__}: {exc}); nothing was registered"
        ) from exc
    return CheckedModel(model_dir, report, registered)


def _drop_inherited_manifest(model_dir: Path, trainer: str) -> None:
    """A trainer that starts from a copy of the champion's files also copies its
    canaryflow manifest, which then names the parent's weights: every fine-tune would fail
    as "differs from its manifest". The manifest is canaryflow's packaging record, written
    at register; a directory a trainer produced has not been packaged yet, so one found there
    is not evidence of anything and is removed (register writes the candidate's own)."""
    inherited = model_dir / manifest.MANIFEST_FILE
    if inherited.is_file():
        log.info(
            "%s: %s came with the trainer's output (copied from its parent?); dropped, the "
            "candidate's own is written when it is registered",
            trainer,
            inherited,
        )
        inherited.unlink()


def register_candidate(
    registry: ModelRegistry,
    name: str,
    model: CheckedModel,
    tags: Mapping[str, str],
    *,
    champion_version: str | None,
) -> ModelVersion:
    """Register (or take the trainer's version), tag it, alias it `challenger`."""
    if model.registered is not None and model.registered.name != name:
        raise TrainerOutputError(
            f"the trainer registered {model.registered.uri}, but this retrain is for {name!r}"
        )
    mv = model.registered or registry.register(name, model.model_dir, dict(tags))
    if mv.rejected:
        raise TrainerOutputError(
            f"the trainer's model is {name} v{mv.version}, rejected by an earlier release "
            f"({mv.tags.get('canaryflow.rejected_reasons', 'no reasons recorded')}); train "
            "something different"
        )
    if champion_version is not None and mv.version == champion_version:
        raise TrainerOutputError(
            f"the trainer's model is {name} v{mv.version}, the champion itself (identical "
            "files): there is nothing new to release; check that the trainer trains"
        )
    registry.set_tags(name, mv.version, dict(tags))
    registry.set_alias(name, CHALLENGER, mv.version)
    return registry.get(name, mv.version)
