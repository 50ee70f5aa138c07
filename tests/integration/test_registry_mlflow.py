"""MlflowRegistry against a real MLflow sqlite store with local artifacts, all under tmp_path."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from infra.errors import (
    ChecksumMismatchError,
    ModelVersionNotFoundError,
    RegistryError,
    RegistryUnreachableError,
)
from infra.registry import CHALLENGER, CHAMPION, registry_from_uri
from infra.registry.mlflow_registry import MlflowRegistry
from tests.unit.test_registry_fake import NAME, TAGS, RegistryContract, change

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty MLflow database: copying it saves ~2 s of schema setup per test."""
    db = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{db}").search_experiments(max_results=1)
    return db


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> str:
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    shutil.copy(empty_store, db)
    return f"sqlite:///{db}"


class TestMlflowRegistry(RegistryContract):
    @pytest.fixture
    def registry(self, store: str) -> MlflowRegistry:
        return MlflowRegistry(store)

    def test_files_are_run_artifacts_beside_the_db(
        self, registry: MlflowRegistry, untrained_model: Path, store: str
    ) -> None:
        mv = registry.register(NAME, untrained_model, TAGS)

        artifacts = Path(store.removeprefix("sqlite:///")).parent / "artifacts"
        assert mv.source == f"{artifacts.as_uri()}/{mv.run_id}/artifacts/model"
        run = registry.client.get_run(mv.run_id)
        assert run.info.status == "FINISHED"
        assert TAGS.items() <= run.data.tags.items()

    def test_corrupt_artifacts_fail_download_and_leave_nothing(
        self, registry: MlflowRegistry, untrained_model: Path, tmp_path: Path
    ) -> None:
        mv = registry.register(NAME, untrained_model)
        stored = Path(mv.source.removeprefix("file://"))
        (stored / "config.json").write_text("{}")  # bit rot in the artifact store

        with pytest.raises(ChecksumMismatchError, match=r"config\.json"):
            registry.download(NAME, mv.version, tmp_path / "dst")
        assert not (tmp_path / "dst").exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".dst")] == []

    @pytest.mark.parametrize("server_committed", [False, True], ids=["refused", "answer-lost"])
    def test_failed_create_model_version_leaves_registry_unchanged(
        self, store: str, untrained_model: Path, server_committed: bool
    ) -> None:
        registry = MlflowRegistry(store)
        v1 = registry.register(NAME, untrained_model, alias=CHALLENGER)
        flaky = MlflowRegistry(
            store, client=_FailingClient(store, "create_model_version", server_committed)
        )

        with pytest.raises(RegistryError, match="create a version of tiny-chat"):
            flaky.register(NAME, change(untrained_model, 2), alias=CHALLENGER)

        assert _versions(store) == ["1"]
        assert registry.get_by_alias(NAME, CHALLENGER) == registry.get(NAME, v1.version)

    def test_failed_alias_after_create_removes_the_new_version(
        self, store: str, untrained_model: Path
    ) -> None:
        flaky = MlflowRegistry(store, client=_FailingClient(store, "set_registered_model_alias"))

        with pytest.raises(RegistryError, match="set tiny-chat@challenger"):
            flaky.register(NAME, untrained_model, alias=CHALLENGER)

        assert _versions(store) == []
        with pytest.raises(ModelVersionNotFoundError):  # the model it created is gone too
            MlflowRegistry(store).get_by_alias(NAME, CHALLENGER)

    def test_racing_identical_registers_keep_the_older_version(
        self, store: str, untrained_model: Path
    ) -> None:
        winner = MlflowRegistry(store).register(NAME, untrained_model, TAGS)
        # The loser searched before the winner committed, so it saw no version with the digest.
        late = MlflowRegistry(store, client=_BlindFirstSearchClient(store))

        mv = late.register(NAME, untrained_model, TAGS, alias=CHALLENGER)

        assert mv.version == winner.version
        assert mv.aliases == (CHALLENGER,)
        assert _versions(store) == ["1"]

    def test_factory_builds_it(self, store: str) -> None:
        assert isinstance(registry_from_uri(store), MlflowRegistry)

    def test_alias_of_unknown_version(
        self, registry: MlflowRegistry, untrained_model: Path
    ) -> None:
        registry.register(NAME, untrained_model, alias=CHAMPION)
        with pytest.raises(ModelVersionNotFoundError):
            registry.set_alias(NAME, CHAMPION, "9")
        assert registry.get_by_alias(NAME, CHAMPION).version == "1"


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:9", "sqlite:///{tmp}/no/such/dir/mlflow.db"],
    ids=["no-server", "no-directory"],
)
def test_unreachable_store_fails_fast_and_writes_nothing(uri: str, tmp_path: Path) -> None:
    uri = uri.format(tmp=tmp_path)
    start = time.monotonic()

    with pytest.raises(RegistryUnreachableError, match=r"cannot be reached.*Nothing was written"):
        MlflowRegistry(uri)

    assert time.monotonic() - start < 10
    assert list(tmp_path.iterdir()) == []


def test_unusable_sqlite_file_is_unreachable(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database")

    with pytest.raises(RegistryUnreachableError, match=r"mlflow\.db"):
        MlflowRegistry(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert (tmp_path / "mlflow.db").read_text() == "not a database"


class _FailingClient(MlflowClient):
    """A real client whose `method` fails; with `server_committed` the call goes through
    first and only the answer is lost (a timeout after the server committed)."""

    def __init__(self, uri: str, method: str, server_committed: bool = False) -> None:
        super().__init__(uri)
        real = getattr(self, method)

        def failing(*args: Any, **kwargs: Any) -> Any:
            if server_committed:
                real(*args, **kwargs)
            raise MlflowException(f"injected failure in {method}")

        setattr(self, method, failing)


class _BlindFirstSearchClient(MlflowClient):
    """A real client whose first version search finds nothing, as if a racer had not committed
    yet."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri)
        self.searches = 0

    def search_model_versions(self, *args: Any, **kwargs: Any) -> Any:
        self.searches += 1
        return [] if self.searches == 1 else super().search_model_versions(*args, **kwargs)


def _versions(store: str) -> list[str]:
    found = MlflowClient(store).search_model_versions(f"name = '{NAME}'")
    return sorted(str(mv.version) for mv in found)
