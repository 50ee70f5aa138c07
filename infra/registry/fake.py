"""In-memory `ModelRegistry` for unit tests: same promises as MLflow, no store, calls recorded.

    registry = FakeRegistry()
    mv = registry.register("tiny-chat", model_dir, alias=CHALLENGER)
    ...code under test...
    assert ("set_alias", ("tiny-chat", "champion", mv.version)) in registry.calls

`fail={"set_alias": RegistryUnreachableError("down")}` makes that method raise (after the call
is recorded and before anything changes), to test how callers handle a registry failure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from infra.errors import ModelVersionNotFoundError, RegistryError
from infra.registry.base import (
    CHALLENGER,
    DIGEST_TAG,
    REJECTED_REASONS_TAG,
    REJECTED_TAG,
    ModelVersion,
    describe_aliases,
    download_verified,
    rejected_message,
)
from validation import manifest

_RESERVED_ALIAS = re.compile(r"(latest|v\d+)", re.IGNORECASE)


@dataclass
class _Model:
    versions: dict[str, ModelVersion] = field(default_factory=dict)
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class FakeRegistry:
    """A `ModelRegistry` held in a dict; files are copied in, so later edits don't leak in."""

    def __init__(self, *, fail: Mapping[str, Exception] | None = None) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        self.fail: dict[str, Exception] = dict(fail or {})
        self._models: dict[str, _Model] = {}

    def _call(self, method: str, *args: object) -> None:
        self.calls.append((method, args))
        if method in self.fail:
            raise self.fail[method]

    def register(
        self,
        name: str,
        model_dir: Path,
        tags: Mapping[str, str] | None = None,
        *,
        alias: str | None = None,
    ) -> ModelVersion:
        self._call("register", name, model_dir, dict(tags or {}), alias)
        if alias is not None:
            _check_alias(alias)  # before anything is stored: a register is all or nothing
        model_dir = Path(model_dir)
        if (model_dir / manifest.MANIFEST_FILE).is_file():
            digest = manifest.verify(model_dir)
        else:
            digest = manifest.write(model_dir)
        model = self._models.setdefault(name, _Model())
        existing = [mv for mv in model.versions.values() if mv.digest == digest]
        if existing:
            mv = existing[0]
        else:
            version = str(len(model.versions) + 1)
            mv = ModelVersion(
                name=name,
                version=version,
                digest=digest,
                source=f"memory://{name}/{version}",
                tags={**(tags or {}), DIGEST_TAG: digest},
                run_id=f"fake-run-{name}-{version}",
            )
            model.versions[version] = mv
            model.files[version] = {
                p.relative_to(model_dir).as_posix(): p.read_bytes()
                for p in sorted(model_dir.rglob("*"))
                if p.is_file()
            }
        if alias:
            if mv.rejected:
                raise RegistryError(rejected_message(mv, alias))
            self._set_alias(name, alias, mv.version)
        return self._view(name, mv.version)

    def get(self, name: str, version: str) -> ModelVersion:
        self._call("get", name, version)
        return self._view(name, version)

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        self._call("get_by_alias", name, alias)
        model = self._model(name)
        if alias not in model.aliases:
            raise ModelVersionNotFoundError(
                f"model {name!r} has no alias {alias!r}; existing aliases: "
                f"{describe_aliases(model.aliases)}"
            )
        return self._view(name, model.aliases[alias])

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._call("set_alias", name, alias, version)
        self._set_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("delete_alias", name, alias)
        self._model(name).aliases.pop(alias, None)

    def set_tags(self, name: str, version: str, tags: Mapping[str, str]) -> ModelVersion:
        self._call("set_tags", name, version, dict(tags))
        mv = self._view(name, version)
        self._model(name).versions[version] = replace(mv, tags={**mv.tags, **tags}, aliases=())
        return self._view(name, version)

    def reject(self, name: str, version: str, reasons: Sequence[str]) -> ModelVersion:
        self._call("reject", name, version, list(reasons))
        model = self._model(name)
        mv = self._view(name, version)
        tags = {**mv.tags, REJECTED_TAG: "true", REJECTED_REASONS_TAG: "; ".join(reasons)}
        model.versions[version] = replace(model.versions[version], tags=tags)
        if model.aliases.get(CHALLENGER) == version:
            del model.aliases[CHALLENGER]
        return self._view(name, version)

    def download(self, name: str, version: str, dst: Path) -> Path:
        self._call("download", name, version, dst)
        mv = self._view(name, version)
        files = self._models[name].files[version]

        def fetch(scratch: Path) -> Path:
            for rel, data in files.items():
                (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
                (scratch / rel).write_bytes(data)
            return scratch

        return download_verified(Path(dst), mv.digest, fetch)

    # -- helpers ---------------------------------------------------------------------------

    def _model(self, name: str) -> _Model:
        if name not in self._models:
            raise ModelVersionNotFoundError(
                f"no registered model {name!r}; registered: {sorted(self._models) or 'none'}"
            )
        return self._models[name]

    def _view(self, name: str, version: str) -> ModelVersion:
        model = self._model(name)
        if version not in model.versions:
            raise ModelVersionNotFoundError(
                f"model {name!r} has no version {version!r}; versions: "
                f"{sorted(model.versions, key=int) or 'none'}"
            )
        aliases = tuple(sorted(a for a, v in model.aliases.items() if v == version))
        return replace(model.versions[version], aliases=aliases)

    def _set_alias(self, name: str, alias: str, version: str) -> None:
        _check_alias(alias)
        self._view(name, version)
        self._models[name].aliases[alias] = version


def _check_alias(alias: str) -> None:
    if not alias or _RESERVED_ALIAS.fullmatch(alias):
        raise RegistryError(f"alias {alias!r} is reserved by MLflow; choose another name")
