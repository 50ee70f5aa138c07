"""Thin `git` subprocess helpers shared by install.py and spec_at.py.

    run_git(["rev-parse", "--absolute-git-dir"], cwd=path)   # CompletedProcess, never raises
    locate_repo(Path("/srv/git/models.git"))                  # RepoPaths or NotAGitRepoError

Variables a hook inherits (GIT_DIR, GIT_WORK_TREE, ...) are dropped so each call sees only
the repository it names.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from infra.githook.errors import NotAGitRepoError

_REPO_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")


def git_env() -> dict[str, str]:
    """os.environ without the variables that would point git at another repository."""
    return {k: v for k, v in os.environ.items() if k not in _REPO_ENV}


def run_git(
    args: list[str], cwd: Path | str, *, timeout_s: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """`git -C cwd ARGS`, text output captured; a missing git binary reads as returncode 127."""
    try:
        return subprocess.run(
            ["git", "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            env=git_env(),
            timeout=timeout_s,
            check=False,
        )
    except FileNotFoundError:
        return subprocess.CompletedProcess(["git"], 127, "", "git: command not found")


@dataclass(frozen=True)
class RepoPaths:
    """Where a repository keeps things."""

    root: Path  # the bare repo's dir, or the work tree
    git_dir: Path
    hooks_dir: Path  # honours core.hooksPath
    bare: bool


def locate_repo(path: Path) -> RepoPaths:
    """Resolve `path` (a bare repo or a work tree root) or raise NotAGitRepoError."""
    if not path.is_dir():
        raise NotAGitRepoError(f"{path} is not a directory; give the path of a git repository")
    probe = run_git(
        ["rev-parse", "--absolute-git-dir", "--is-bare-repository", "--git-path", "hooks"], path
    )
    if probe.returncode != 0:
        raise NotAGitRepoError(
            f"{path} is not a git repository ({probe.stderr.strip()}); create one with "
            f"`git init --bare {path}` or point --repo at an existing repository"
        )
    git_dir_s, bare_s, hooks_s = probe.stdout.splitlines()[:3]
    git_dir, bare = Path(git_dir_s), bare_s.strip() == "true"
    root = git_dir if bare else Path(run_git(["rev-parse", "--show-toplevel"], path).stdout.strip())
    if root.resolve() != path.resolve():
        raise NotAGitRepoError(
            f"{path} is inside the git repository at {root}, not its root; pass --repo {root}"
        )
    hooks = Path(hooks_s)
    hooks_dir = hooks if hooks.is_absolute() else (path / hooks)
    return RepoPaths(root=root.resolve(), git_dir=git_dir, hooks_dir=hooks_dir.resolve(), bare=bare)


def read_config(git_dir: Path, prefix: str = "canaryflow.") -> dict[str, str]:
    """The repo's own `git config` keys under `prefix` (keys as git prints them: lower case)."""
    out = run_git(["config", "--local", "--get-regexp", "^" + prefix.replace(".", r"\.")], git_dir)
    values: dict[str, str] = {}
    for line in out.stdout.splitlines():
        key, _, value = line.partition(" ")
        values[key] = value
    return values
