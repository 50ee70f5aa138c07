"""`ModelRegistry` on MLflow: a version is a directory of model files logged as run artifacts.

register(name, dir) = manifest → one run in the packaging experiment holding the files under
`model/` → `create_model_version(source=<that artifact URI>, run_id=…)`. Not `register_model`:
it wants an MLmodel file, and a plain vLLM model directory has none.

Failure handling, in order of the steps:
- store unreachable → `RegistryUnreachableError` from the constructor, before anything is
  written (the probe uses no retries and a short timeout);
- artifact upload fails → the run is marked FAILED; the registry is untouched;
- create_model_version or the alias fails → the versions this run created are deleted (and the
  registered model if this call created it), so the registry is as it was before;
- any other MLflow error → `RegistryError` naming the operation and the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow.artifacts
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from infra.errors import (
    CanaryflowError,
    ModelVersionNotFoundError,
    RegistryError,
    RegistryUnreachableError,
)
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

log = logging.getLogger(__name__)

PACKAGING_EXPERIMENT = "canaryflow-packaging"
ARTIFACT_PATH = "model"
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
_UNREACHABLE_HINTS = (
    "Max retries exceeded", "Connection refused", "timeout exception",
    # a SQL store that is gone, read-only, locked or not a database (sqlite3/SQLAlchemy)
    "OperationalError", "unable to open database", "readonly database", "database is locked",
    "file is not a database",
)  # fmt: skip


class MlflowRegistry:
    """MLflow model registry (sqlite file, or an MLflow server over http(s), or a SQL database).

    Args:
        tracking_uri: where runs and artifacts are recorded, e.g. `sqlite:////var/lib/x/mlflow.db`
            or `http://127.0.0.1:5000`.
        registry_uri: the model registry, if not the tracking store.
        artifact_root: where the packaging experiment stores files when this registry creates
            it; defaults to `artifacts/` beside a sqlite file, and to the server's choice for
            a server.
        experiment: the experiment whose runs hold the packaged files.
        probe_timeout_s: how long the reachability probe may take.
        client: an `MlflowClient` to use instead of building one (tests inject failures here).
    """

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        *,
        artifact_root: str | Path | None = None,
        experiment: str = PACKAGING_EXPERIMENT,
        probe_timeout_s: float = 5.0,
        client: MlflowClient | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri or tracking_uri
        for uri in dict.fromkeys((tracking_uri, self.registry_uri)):
            _probe(uri, probe_timeout_s)
        self.artifact_root = _artifact_root(tracking_uri, artifact_root)
        self.experiment = experiment
        with self._errors("open the store", unreachable=True):
            self.client = client or MlflowClient(tracking_uri, registry_uri)
            # A read proves a SQL store answers and has its schema before anything is written.
            self.client.search_experiments(max_results=1)
        self._experiment_id: str | None = None

    def __repr__(self) -> str:
        return f"MlflowRegistry({self.tracking_uri!r})"

    # -- the ModelRegistry protocol ---------------------------------------------------------

    def register(
        self,
        name: str,
        model_dir: Path,
        tags: Mapping[str, str] | None = None,
        *,
        alias: str | None = None,
    ) -> ModelVersion:
        _check_name(name)
        model_dir = Path(model_dir)
        if (model_dir / manifest.MANIFEST_FILE).is_file():
            digest = manifest.verify(model_dir)
        else:
            digest = manifest.write(model_dir)
        existing = self._find_by_digest(name, digest)
        if existing:
            mv = existing[0]
            log.info("%s: content %s is already version %s", name, digest[:12], mv.version)
            if alias:
                self._alias(mv, alias)
            return self.get(name, mv.version)
        all_tags = {**(tags or {}), DIGEST_TAG: digest}
        run_id, source = self._log_files(name, model_dir, all_tags)
        created_model = self._ensure_registered_model(name)
        try:
            mv = self._create_version(name, source, run_id, all_tags)
            if alias:
                self._alias(mv, alias)
        except CanaryflowError:
            self._undo(name, run_id, created_model)
            raise
        return self.get(name, mv.version)

    def get(self, name: str, version: str) -> ModelVersion:
        with self._errors(f"get {name} version {version}"):
            return _to_version(self.client.get_model_version(name, str(version)))

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        try:
            with self._errors(f"get {name}@{alias}"):
                return _to_version(self.client.get_model_version_by_alias(name, alias))
        except RegistryError as e:
            # MLflow 3.17 answers INVALID_PARAMETER_VALUE (not RESOURCE_DOES_NOT_EXIST) for a
            # missing alias, so look at what exists before calling it "not found".
            try:
                with self._errors(f"get registered model {name}"):
                    aliases = self.client.get_registered_model(name).aliases
            except ModelVersionNotFoundError:
                raise ModelVersionNotFoundError(
                    f"no registered model {name!r} (so no alias {alias!r}) in "
                    f"{self.registry_uri}; register the model first"
                ) from e
            if alias in aliases:
                raise
            raise ModelVersionNotFoundError(
                f"model {name!r} has no alias {alias!r}; existing aliases: "
                f"{describe_aliases({a: str(v) for a, v in aliases.items()})}"
            ) from e

    def set_alias(self, name: str, alias: str, version: str) -> None:
        # One server-side operation: the alias moves atomically (no moment without it).
        with self._errors(f"set {name}@{alias} -> version {version}"):
            self.client.set_registered_model_alias(name, alias, str(version))

    def delete_alias(self, name: str, alias: str) -> None:
        with self._errors(f"delete {name}@{alias}"):
            self.client.delete_registered_model_alias(name, alias)

    def set_tags(self, name: str, version: str, tags: Mapping[str, str]) -> ModelVersion:
        with self._errors(f"tag {name} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, value)
        return self.get(name, version)

    def reject(self, name: str, version: str, reasons: Sequence[str]) -> ModelVersion:
        version = str(version)
        with self._errors(f"reject {name} version {version}"):
            # Reasons first: `rejected=true` then always comes with its reasons.
            self.client.set_model_version_tag(
                name, version, REJECTED_REASONS_TAG, "; ".join(reasons)
            )
            self.client.set_model_version_tag(name, version, REJECTED_TAG, "true")
            # Check-then-delete is two calls; a challenger moved in between would be lost, but
            # only the release holding this candidate moves `challenger`.
            if CHALLENGER in self.get(name, version).aliases:
                self.client.delete_registered_model_alias(name, CHALLENGER)
        return self.get(name, version)

    def download(self, name: str, version: str, dst: Path) -> Path:
        mv = self.get(name, version)

        def fetch(scratch: Path) -> Path:
            with self._errors(f"download {name} version {version} from {mv.source}"):
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=mv.source, dst_path=str(scratch), tracking_uri=self.tracking_uri
                )
            return Path(local)

        return download_verified(Path(dst), mv.digest, fetch)

    # -- steps of register ------------------------------------------------------------------

    def _find_by_digest(self, name: str, digest: str) -> list[ModelVersion]:
        """Versions of `name` holding `digest`, oldest first."""
        query = f"name = '{name}' AND tags.`{DIGEST_TAG}` = '{digest}'"
        with self._errors(f"search {name} for digest {digest[:12]}"):
            found = [_to_version(mv) for mv in self.client.search_model_versions(query)]
        return sorted(found, key=lambda mv: int(mv.version))

    def _log_files(self, name: str, model_dir: Path, tags: Mapping[str, str]) -> tuple[str, str]:
        """Upload `model_dir` as the artifacts of a new packaging run; (run id, source URI)."""
        with self._errors(f"create a packaging run for {name}"):
            run = self.client.create_run(
                self._packaging_experiment(), run_name=f"package-{name}", tags=dict(tags)
            )
        run_id = run.info.run_id
        try:
            with self._errors(f"upload {model_dir} to {run.info.artifact_uri}"):
                self.client.log_artifacts(run_id, str(model_dir), ARTIFACT_PATH)
                self.client.set_terminated(run_id, "FINISHED")
        except RegistryError:
            with contextlib.suppress(Exception):
                self.client.set_terminated(run_id, "FAILED")
            raise
        return run_id, f"{run.info.artifact_uri}/{ARTIFACT_PATH}"

    def _create_version(
        self, name: str, source: str, run_id: str, tags: Mapping[str, str]
    ) -> ModelVersion:
        with self._errors(f"create a version of {name} from {source}"):
            mv = self.client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
        # Two identical registers racing both create a version; the older one wins.
        same = self._find_by_digest(name, tags[DIGEST_TAG])
        if same and same[0].version != str(mv.version):
            self._undo(name, run_id, created_model=False)
            return same[0]
        return _to_version(mv)

    def _alias(self, mv: ModelVersion, alias: str) -> None:
        if mv.rejected:
            raise RegistryError(rejected_message(mv, alias))
        self.set_alias(mv.name, alias, mv.version)

    def _ensure_registered_model(self, name: str) -> bool:
        """Create the registered model if absent; True if this call created it."""
        try:
            with self._errors(f"get registered model {name}"):
                self.client.get_registered_model(name)
            return False
        except ModelVersionNotFoundError:
            pass
        with self._errors(f"create registered model {name}"):
            try:
                self.client.create_registered_model(name)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                return False
        return True

    def _undo(self, name: str, run_id: str, created_model: bool) -> None:
        """Delete what a failed register created, so the registry is as it was before."""
        try:
            with self._errors(f"roll back the failed register of {name}"):
                for mv in self.client.search_model_versions(f"run_id = '{run_id}'"):
                    self.client.delete_model_version(mv.name, str(mv.version))
                if created_model and not self.client.search_model_versions(f"name = '{name}'"):
                    self.client.delete_registered_model(name)
                self.client.set_terminated(run_id, "FAILED")
        except CanaryflowError as e:
            log.error("%s; versions of run %s may need deleting by hand", e, run_id)

    def _packaging_experiment(self) -> str:
        if self._experiment_id is None:
            with self._errors(f"open experiment {self.experiment}"):
                exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    try:
                        self.client.create_experiment(
                            self.experiment, artifact_location=self.artifact_root
                        )
                    except MlflowException as e:
                        if e.error_code != "RESOURCE_ALREADY_EXISTS":  # else: lost a race
                            raise
                    exp = self.client.get_experiment_by_name(self.experiment)
                if exp is None:
                    raise RegistryError(f"experiment {self.experiment} could not be created")
                if exp.lifecycle_stage == "deleted":  # someone deleted it in the UI
                    self.client.restore_experiment(exp.experiment_id)
                self._experiment_id = str(exp.experiment_id)
        return self._experiment_id

    @contextlib.contextmanager
    def _errors(self, action: str, *, unreachable: bool = False) -> Iterator[None]:
        """Turn MLflow's exceptions into named canaryflow errors that say what was being done."""
        try:
            yield
        except CanaryflowError:
            raise
        except MlflowException as e:
            if e.error_code == _NOT_FOUND:
                raise ModelVersionNotFoundError(f"{action}: {e.message}") from e
            raise store_error(self.tracking_uri, action, e, unreachable=unreachable) from e
        except Exception as e:
            raise store_error(self.tracking_uri, action, e, unreachable=unreachable) from e


# -- helpers ---------------------------------------------------------------------------------


def _probe(uri: str, timeout_s: float) -> None:
    """Fail fast, before any write, if `uri` cannot hold a registry."""
    scheme = urlparse(uri).scheme
    if scheme == "sqlite":
        path = uri.removeprefix("sqlite:///")
        if path == ":memory:":
            return
        parent = Path(path).parent
        if not parent.is_dir():
            raise _unreachable(uri, f"directory {parent} does not exist; create it first")
        if not os.access(parent, os.W_OK):
            raise _unreachable(uri, f"directory {parent} is not writable")
    elif scheme in ("http", "https"):
        # MLflow's own HTTP stack (auth, TLS settings) but no retries and a short timeout: the
        # defaults (7 retries with backoff) take minutes to report a server that isn't there.
        from mlflow.utils.credentials import get_default_host_creds
        from mlflow.utils.rest_utils import http_request

        try:
            http_request(  # type: ignore[no-untyped-call]
                get_default_host_creds(uri),  # type: ignore[no-untyped-call]
                "/health",
                "GET",
                max_retries=0,
                timeout=timeout_s,
                raise_on_status=False,
            )
        except Exception as e:
            raise _unreachable(uri, str(e)) from e


def store_error(
    uri: str, action: str, exc: Exception, *, unreachable: bool = False
) -> RegistryError:
    """The named canaryflow error for an MLflow failure while doing `action` on `uri`."""
    message = exc.message if isinstance(exc, MlflowException) else str(exc)
    if unreachable or any(h in message for h in _UNREACHABLE_HINTS):
        return _unreachable(uri, f"{action}: {_gist(message)}")
    return RegistryError(f"{action} failed on {uri}: {message}")


def _gist(message: str) -> str:
    """The telling line of a store error (SQLAlchemy's carries the SQL and its parameters)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    telling = [line for line in lines if "Error" in line and not line.startswith("[")]
    return (telling or lines or [message])[-1][:300]


def _unreachable(uri: str, detail: str) -> RegistryUnreachableError:
    return RegistryUnreachableError(
        f"MLflow store {uri} cannot be reached ({detail}). Nothing was written. Start the "
        "MLflow server or fix the tracking URI (MLFLOW_TRACKING_URI / the release spec), "
        "then run again."
    )


def _artifact_root(tracking_uri: str, artifact_root: str | Path | None) -> str | None:
    if artifact_root is not None:
        root = str(artifact_root)
        return Path(root).resolve().as_uri() if "://" not in root else root
    if tracking_uri.startswith("sqlite:///") and ":memory:" not in tracking_uri:
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return (db.resolve().parent / "artifacts").as_uri()
    return None  # a server decides (its --default-artifact-root / artifact proxy)


def _check_name(name: str) -> None:
    # The name goes into search filter strings, which have no escaping for quotes.
    if not name or any(c in name for c in "'\"`"):
        raise RegistryError(f"model name {name!r} is empty or contains quotes; rename it")


def _to_version(mv: Any) -> ModelVersion:
    tags = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    return ModelVersion(
        name=mv.name,
        # The sqlite store returns an int here, the REST store a str.
        version=str(mv.version),
        digest=tags.get(DIGEST_TAG, ""),
        source=mv.source,
        tags=tags,
        aliases=tuple(sorted(mv.aliases or ())),
        run_id=mv.run_id,
    )
