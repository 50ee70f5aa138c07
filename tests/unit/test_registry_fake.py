"""The ModelRegistry contract, run here against FakeRegistry and in
tests/integration/test_registry_mlflow.py against a real MLflow sqlite store."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

from infra.errors import (
    ChecksumMismatchError,
    ModelVersionNotFoundError,
    RegistryError,
    RegistryUnreachableError,
)
from infra.registry import CHALLENGER, CHAMPION, FakeRegistry, ModelRegistry, registry_from_uri
from infra.registry.base import DIGEST_TAG, REJECTED_REASONS_TAG, REJECTED_TAG
from validation import manifest

NAME = "tiny-chat"
TAGS = {"git.sha": "0123abc", "data.hash": "d4t4", "metric.exact_match": "0.91"}


def change(model_dir: Path, value: int) -> Path:
    """A new build of the model: different content and no manifest yet."""
    cfg = model_dir / "generation_config.json"
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "canaryflow_test": value}))
    (model_dir / manifest.MANIFEST_FILE).unlink(missing_ok=True)
    return model_dir


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


class RegistryContract:
    """What every ModelRegistry promises. Subclasses provide the `registry` fixture."""

    def test_register_creates_version_with_tags_and_alias(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model, TAGS, alias=CHALLENGER)

        assert (mv.name, mv.version, mv.aliases) == (NAME, "1", (CHALLENGER,))
        assert mv.digest == manifest.verify(untrained_model)  # manifest written into the dir
        assert mv.tags[DIGEST_TAG] == mv.digest
        assert TAGS.items() <= mv.tags.items()
        assert not mv.rejected
        assert registry.get_by_alias(NAME, CHALLENGER) == mv
        assert registry.get(NAME, "1") == mv

    def test_same_content_returns_the_existing_version(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        first = registry.register(NAME, untrained_model, TAGS)
        (untrained_model / manifest.MANIFEST_FILE).unlink()  # a fresh copy of the same files
        again = registry.register(NAME, untrained_model, {"git.sha": "other"}, alias=CHALLENGER)

        assert again.version == first.version == "1"
        assert again.tags["git.sha"] == TAGS["git.sha"]  # the first registration is the record
        assert again.aliases == (CHALLENGER,)
        with pytest.raises(ModelVersionNotFoundError):
            registry.get(NAME, "2")

    def test_changed_content_is_a_new_version(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        v1 = registry.register(NAME, untrained_model, TAGS)
        v2 = registry.register(NAME, change(untrained_model, 2), TAGS)

        assert (v1.version, v2.version) == ("1", "2")
        assert v1.digest != v2.digest

    def test_stale_manifest_is_refused(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        registry.register(NAME, untrained_model)
        (untrained_model / "config.json").write_text("{}")  # edited after packaging

        with pytest.raises(ChecksumMismatchError, match=r"config\.json"):
            registry.register(NAME, untrained_model)
        with pytest.raises(ModelVersionNotFoundError):
            registry.get(NAME, "2")

    def test_aliases_move(self, registry: ModelRegistry, untrained_model: Path) -> None:
        v1 = registry.register(NAME, untrained_model, alias=CHAMPION)
        v2 = registry.register(NAME, change(untrained_model, 2), alias=CHALLENGER)

        registry.set_alias(NAME, CHAMPION, v2.version)  # promote

        assert registry.get_by_alias(NAME, CHAMPION).version == v2.version
        assert registry.get(NAME, v2.version).aliases == (CHALLENGER, CHAMPION)
        assert registry.get(NAME, v1.version).aliases == ()
        registry.delete_alias(NAME, CHALLENGER)
        registry.delete_alias(NAME, CHALLENGER)  # absent: a no-op
        assert registry.get(NAME, v2.version).aliases == (CHAMPION,)

    def test_missing_alias_names_it_and_lists_existing(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        registry.register(NAME, untrained_model, alias=CHALLENGER)

        with pytest.raises(ModelVersionNotFoundError, match=r"'champion'.*challenger.*v1"):
            registry.get_by_alias(NAME, CHAMPION)
        with pytest.raises(ModelVersionNotFoundError, match="no-such-model"):
            registry.get_by_alias("no-such-model", CHAMPION)
        with pytest.raises(ModelVersionNotFoundError):
            registry.set_alias(NAME, CHAMPION, "7")

    def test_reject_tags_and_drops_challenger(
        self, registry: ModelRegistry, untrained_model: Path
    ) -> None:
        v1 = registry.register(NAME, untrained_model, alias=CHAMPION)
        v2 = registry.register(NAME, change(untrained_model, 2), alias=CHALLENGER)

        rejected = registry.reject(NAME, v2.version, ["p95 latency +40%", "error rate 3%"])

        assert rejected.rejected
        assert rejected.tags[REJECTED_TAG] == "true"
        assert rejected.tags[REJECTED_REASONS_TAG] == "p95 latency +40%; error rate 3%"
        assert rejected.aliases == ()
        assert registry.get_by_alias(NAME, CHAMPION).version == v1.version  # untouched
        with pytest.raises(ModelVersionNotFoundError):
            registry.get_by_alias(NAME, CHALLENGER)
        # The same files again: no new version, and no challenger pointing at rejected content.
        (untrained_model / manifest.MANIFEST_FILE).unlink()
        with pytest.raises(RegistryError, match=r"rejected \(p95 latency"):
            registry.register(NAME, untrained_model, alias=CHALLENGER)
        assert registry.register(NAME, untrained_model).version == v2.version

    def test_download_gives_identical_verified_files(
        self, registry: ModelRegistry, untrained_model: Path, tmp_path: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model, TAGS)
        dst = tmp_path / "downloaded" / "tiny-chat"

        assert registry.download(NAME, mv.version, dst) == dst
        assert tree(dst) == tree(untrained_model)
        assert not filecmp.dircmp(dst, untrained_model).diff_files
        assert manifest.verify(dst) == mv.digest
        assert [p.name for p in dst.parent.iterdir()] == ["tiny-chat"]  # no scratch left
        assert registry.download(NAME, mv.version, dst) == dst  # a retry is a no-op

    def test_download_refuses_a_dst_with_other_content(
        self, registry: ModelRegistry, untrained_model: Path, tmp_path: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model)
        dst = tmp_path / "dst"
        dst.mkdir()
        (dst / "stray.txt").write_text("not a model")

        with pytest.raises(ChecksumMismatchError):
            registry.download(NAME, mv.version, dst)
        assert tree(dst) == ["stray.txt"]

    def test_unknown_version(self, registry: ModelRegistry, untrained_model: Path) -> None:
        registry.register(NAME, untrained_model)
        with pytest.raises(ModelVersionNotFoundError, match="7"):
            registry.get(NAME, "7")
        with pytest.raises(ModelVersionNotFoundError):
            registry.download(NAME, "7", untrained_model.parent / "never")
        assert not (untrained_model.parent / "never").exists()


class TestFakeRegistry(RegistryContract):
    @pytest.fixture
    def registry(self) -> FakeRegistry:
        return FakeRegistry()

    def test_records_calls(self, registry: FakeRegistry, untrained_model: Path) -> None:
        mv = registry.register(NAME, untrained_model, TAGS, alias=CHALLENGER)
        registry.set_alias(NAME, CHAMPION, mv.version)

        assert [c[0] for c in registry.calls] == ["register", "set_alias"]
        assert registry.calls[1] == ("set_alias", (NAME, CHAMPION, "1"))

    def test_injected_failure_changes_nothing(
        self, registry: FakeRegistry, untrained_model: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model, alias=CHALLENGER)
        registry.fail["set_alias"] = RegistryUnreachableError("mlflow down")

        with pytest.raises(RegistryUnreachableError):
            registry.set_alias(NAME, CHAMPION, mv.version)
        assert registry.get(NAME, mv.version).aliases == (CHALLENGER,)

    def test_files_are_copied_at_register(
        self, registry: FakeRegistry, untrained_model: Path, tmp_path: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model)
        (untrained_model / "config.json").write_text("{}")  # the source dir changes later

        registry.download(NAME, mv.version, tmp_path / "dst")
        assert manifest.verify(tmp_path / "dst") == mv.digest

    def test_reserved_alias_is_refused(self, registry: FakeRegistry, untrained_model: Path) -> None:
        with pytest.raises(RegistryError, match="reserved"):
            registry.register(NAME, untrained_model, alias="latest")


def test_registry_from_uri_picks_backend_and_refuses_unknown() -> None:
    assert isinstance(registry_from_uri("memory://"), FakeRegistry)
    with pytest.raises(RegistryError, match="no registry backend"):
        registry_from_uri("ftp://example/registry")
