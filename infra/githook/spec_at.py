"""Read the ReleaseSpec file of a pushed commit, straight from git (no checkout).

    spec = load_spec_at("/srv/git/models.git", "1f2e3d...", "release.yaml")

`git -C REPO cat-file blob SHA:PATH` (what `git show SHA:PATH` prints), parsed as JSON
when PATH ends in .json and as YAML otherwise, then validated by infra.spec.ReleaseSpec.
Each failure is a named SpecError (infra/githook/errors.py): RepoNotFoundError,
CommitNotFoundError, SpecFileMissingError, SpecParseError, SpecInvalidError (with every
pydantic field error).
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

import pydantic
import yaml

from infra.githook.errors import (
    CommitNotFoundError,
    RepoNotFoundError,
    SpecFileMissingError,
    SpecInvalidError,
    SpecParseError,
)
from infra.githook.git import run_git
from infra.spec import ReleaseSpec


def load_spec_at(repo: str, sha: str, path: str = "release.yaml") -> ReleaseSpec:
    """The ReleaseSpec in `path` at commit `sha` of the local repository `repo`."""
    where = _repo_dir(repo)
    commit = _commit(where, sha)
    rel = _spec_path(path)
    text = _show(where, commit, rel)
    return parse_spec(text, rel, origin=f"{rel} at {commit[:12]} in {repo}")


def parse_spec(text: str, path: str, origin: str) -> ReleaseSpec:
    """Parse YAML/JSON `text` (JSON when `path` ends in .json) into a ReleaseSpec."""
    data: Any
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise SpecParseError(f"{origin} is not valid {_kind(path)}: {e}") from None
    if not isinstance(data, dict):
        raise SpecParseError(
            f"{origin} must hold a mapping of ReleaseSpec fields (at least `model:`), "
            f"not {type(data).__name__}"
        )
    try:
        return ReleaseSpec.model_validate(data)
    except pydantic.ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
            for err in e.errors()
        )
        raise SpecInvalidError(
            f"{origin} is not a valid ReleaseSpec ({e.error_count()} error(s)): {problems}"
        ) from None


def _kind(path: str) -> str:
    return "JSON" if path.endswith(".json") else "YAML"


def _repo_dir(repo: str) -> Path:
    if "://" in repo or (":" in repo and "@" in repo.split(":", 1)[0]):
        raise RepoNotFoundError(
            f"{repo} is a remote URL; load_spec_at reads a local repository: clone or fetch "
            "it first (git clone --bare URL DIR) and pass DIR"
        )
    where = Path(repo)
    if not where.is_dir():
        raise RepoNotFoundError(f"repository {repo} does not exist (no such directory)")
    if run_git(["rev-parse", "--git-dir"], where).returncode != 0:
        raise RepoNotFoundError(f"{repo} is not a git repository")
    return where


def _commit(where: Path, sha: str) -> str:
    if not sha or sha.startswith("-") or any(c.isspace() for c in sha):
        raise CommitNotFoundError(f"{sha!r} is not a commit id")
    out = run_git(["rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"], where)
    if out.returncode != 0:
        raise CommitNotFoundError(
            f"commit {sha} is not in {where}; was it pushed there (git push), or is this the "
            "wrong repository?"
        )
    return out.stdout.strip()


def _spec_path(path: str) -> str:
    rel = PurePosixPath(path.strip().removeprefix("./"))
    if not str(rel) or str(rel) == "." or rel.is_absolute() or ".." in rel.parts:
        raise SpecFileMissingError(
            f"spec path {path!r} must be relative to the repository root, e.g. release.yaml"
        )
    return str(rel)


def _show(where: Path, commit: str, rel: str) -> str:
    out = run_git(["cat-file", "blob", f"{commit}:{rel}"], where)
    if out.returncode == 0:
        return out.stdout
    parent = str(PurePosixPath(rel).parent)
    folder = [] if parent == "." else ["--", parent + "/"]
    ls = run_git(["ls-tree", "--name-only", commit, *folder], where)
    names = ", ".join(ls.stdout.split()[:20]) or "nothing"
    raise SpecFileMissingError(
        f"{rel} does not exist at commit {commit[:12]} in {where} (there: {names}); commit it, "
        "or set the path with `install --spec PATH`"
    )
