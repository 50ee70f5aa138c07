"""Install or remove the canaryflow post-receive hook in a git repository.

    install(Path("/srv/git/models.git"), api_url="http://127.0.0.1:4200/api")
    uninstall(Path("/srv/git/models.git"))

install is idempotent: it (re)writes the hook and sets `git config canaryflow.*` in that
repository (spec, apiUrl, root, python, branches, timeout, repoUrl). A post-receive hook that
canaryflow did not write is left alone unless `force`, which moves it to
`post-receive.canaryflow-backup`; uninstall removes ours and puts such a backup back.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from infra.githook.errors import ForeignHookError, GitHookError
from infra.githook.event import (
    DEFAULT_BRANCHES,
    DEFAULT_SPEC,
    DEFAULT_TIMEOUT_S,
    KEY_API_URL,
    KEY_BRANCHES,
    KEY_PYTHON,
    KEY_REPO_URL,
    KEY_ROOT,
    KEY_SPEC,
    KEY_TIMEOUT,
    check_api_url,
    split_patterns,
)
from infra.githook.git import RepoPaths, locate_repo, run_git

HOOK_TEMPLATE = Path(__file__).with_name("post-receive")
MARKER = "canaryflow-githook"
BACKUP_SUFFIX = ".canaryflow-backup"
CANARYFLOW_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class HookOptions:
    """What `install` records in the repository's git config."""

    spec: str = DEFAULT_SPEC
    api_url: str | None = None  # None: the hook uses PREFECT_API_URL of the git server
    branches: str = DEFAULT_BRANCHES
    timeout_s: float = DEFAULT_TIMEOUT_S
    repo_url: str | None = None  # sent as payload.repo instead of the repo's local path
    root: Path = CANARYFLOW_ROOT
    python: Path = Path(sys.executable)


def is_ours(hook: Path) -> bool:
    """Whether `hook` is a post-receive hook canaryflow wrote."""
    try:
        return MARKER in hook.read_text(errors="replace")[:400]
    except OSError:
        return False


def install(path: Path, options: HookOptions | None = None, *, force: bool = False) -> str:
    """Write the hook and its settings into the repository at `path`; returns a summary."""
    opts = options or HookOptions()
    _check_options(opts)
    repo = locate_repo(path)
    hook = repo.hooks_dir / "post-receive"
    backup = hook.with_name(hook.name + BACKUP_SUFFIX)
    kept = ""
    if hook.exists() and not is_ours(hook):
        if not force:
            raise ForeignHookError(
                f"{hook} exists and was not written by canaryflow; merge it by hand, or "
                f"re-run with --force (it is kept as {backup.name} and restored by uninstall)"
            )
        if backup.exists():
            raise ForeignHookError(
                f"{hook} is foreign and a backup {backup} already exists; move one of them away"
            )
        hook.rename(backup)
        kept = f"; the previous hook is kept as {backup}"
    repo.hooks_dir.mkdir(parents=True, exist_ok=True)
    tmp = hook.with_name(hook.name + ".canaryflow-tmp")
    shutil.copyfile(HOOK_TEMPLATE, tmp)
    tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    os.replace(tmp, hook)  # atomic: a push never sees half a hook
    _write_config(repo, opts)
    where = opts.api_url or "$PREFECT_API_URL of the git server"
    return f"installed {hook} (branches {opts.branches}, spec {opts.spec}, API {where}){kept}"


def uninstall(path: Path) -> str:
    """Remove our hook (restoring a backed-up foreign one) and the canaryflow.* settings."""
    repo = locate_repo(path)
    hook = repo.hooks_dir / "post-receive"
    backup = hook.with_name(hook.name + BACKUP_SUFFIX)
    done: list[str] = []
    if hook.exists() and not is_ours(hook):
        raise ForeignHookError(f"{hook} was not written by canaryflow; leaving it alone")
    if hook.exists():
        hook.unlink()
        done.append(f"removed {hook}")
    if backup.exists():
        backup.rename(hook)
        done.append(f"restored the previous hook from {backup.name}")
    removed = run_git(["config", "--local", "--remove-section", "canaryflow"], repo.git_dir)
    if removed.returncode == 0:  # non-zero: there was no section to remove
        done.append("removed git config canaryflow.*")
    return "; ".join(done) or f"nothing to uninstall in {repo.root}"


def _check_options(opts: HookOptions) -> None:
    if opts.api_url is not None:
        check_api_url(opts.api_url)
    split_patterns(opts.branches)
    if not 1 <= opts.timeout_s <= 120:
        raise GitHookError(f"--timeout {opts.timeout_s:g} must lie in 1..120 seconds")
    spec = opts.spec.strip()
    if not spec or spec.startswith(("/", "-")) or ".." in Path(spec).parts:
        raise GitHookError(
            f"--spec {opts.spec!r} must be a path inside the repository, e.g. release.yaml"
        )
    if not (opts.root / "infra" / "githook").is_dir():
        raise GitHookError(f"{opts.root} is not a canaryflow checkout (no infra/githook)")
    if not os.access(opts.python, os.X_OK):
        raise GitHookError(f"python {opts.python} is not executable; pass the checkout's venv")


def _write_config(repo: RepoPaths, opts: HookOptions) -> None:
    values: dict[str, str | None] = {
        KEY_SPEC: opts.spec.strip().removeprefix("./"),
        KEY_API_URL: opts.api_url.rstrip("/") if opts.api_url else None,
        KEY_ROOT: str(opts.root.resolve()),
        KEY_PYTHON: str(opts.python.absolute()),
        KEY_BRANCHES: opts.branches,
        KEY_TIMEOUT: f"{opts.timeout_s:g}",
        KEY_REPO_URL: opts.repo_url,
    }
    for key, value in values.items():
        args = ["config", "--local", key, value] if value else ["config", "--local", "--unset", key]
        out = run_git(args, repo.git_dir)
        if value and out.returncode != 0:
            raise GitHookError(f"git config {key} failed in {repo.git_dir}: {out.stderr.strip()}")
