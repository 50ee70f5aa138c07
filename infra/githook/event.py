"""Pure parts of the git hook: post-receive input, branch patterns, the event, the settings.

    updates = parse_post_receive(sys.stdin.read())          # [RefUpdate(old, new, ref), ...]
    wanted = refs_to_emit(updates, split_patterns("refs/heads/main refs/heads/release/*"))
    push_event(repo="/srv/git/models.git", ref="refs/heads/main", sha=..., spec="release.yaml")

No I/O here: install.py and emit.py do the git and network work.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from infra.githook.errors import GitHookError, HookConfigError

EVENT_NAME = "canaryflow.git.push"
RESOURCE_PREFIX = "canaryflow.repo."
DEFAULT_SPEC = "release.yaml"
DEFAULT_BRANCHES = "refs/heads/*"
DEFAULT_TIMEOUT_S = 10.0
ZERO_SHA = re.compile(r"^0+$")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # sha1 or sha256 object names
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")

# git config keys (git lower-cases them in --get-regexp output, so compare lower-cased)
KEY_SPEC = "canaryflow.spec"
KEY_API_URL = "canaryflow.apiUrl"
KEY_ROOT = "canaryflow.root"
KEY_PYTHON = "canaryflow.python"
KEY_BRANCHES = "canaryflow.branches"
KEY_TIMEOUT = "canaryflow.timeout"
KEY_REPO_URL = "canaryflow.repoUrl"


@dataclass(frozen=True)
class RefUpdate:
    """One line of post-receive input: `<old-sha> <new-sha> <ref>`."""

    old: str
    new: str
    ref: str

    @property
    def deleted(self) -> bool:
        return bool(ZERO_SHA.match(self.new))


def parse_post_receive(text: str) -> list[RefUpdate]:
    """Parse post-receive stdin; blank lines are ignored, a malformed line is an error."""
    updates: list[RefUpdate] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not all(_SHA.match(p) for p in parts[:2]):
            raise GitHookError(
                f"post-receive input line {n} is not '<old-sha> <new-sha> <ref>': {line!r}"
            )
        updates.append(RefUpdate(parts[0], parts[1], parts[2]))
    return updates


def split_patterns(spec: str) -> tuple[str, ...]:
    """'refs/heads/main, refs/heads/release/*' → the patterns; empty means the default."""
    patterns = tuple(p for p in re.split(r"[\s,]+", spec.strip()) if p)
    for p in patterns:
        if not p.startswith("refs/"):
            raise HookConfigError(
                f"branch pattern {p!r} must be a full ref pattern such as 'refs/heads/main' "
                "or 'refs/heads/release/*'"
            )
    return patterns or (DEFAULT_BRANCHES,)


def ref_matches(ref: str, patterns: Iterable[str]) -> bool:
    """Shell-style match; `*` also crosses '/', so 'refs/heads/*' means every branch."""
    return any(fnmatch.fnmatchcase(ref, p) for p in patterns)


def refs_to_emit(updates: Iterable[RefUpdate], patterns: Iterable[str]) -> list[RefUpdate]:
    """The updates that get an event: not deletions, and matching one of `patterns`."""
    pats = tuple(patterns)
    return [u for u in updates if not u.deleted and ref_matches(u.ref, pats)]


def repo_location(git_dir: str) -> str:
    """Where the repo lives: a bare repo's own dir, or the work tree of `<tree>/.git`."""
    p = PurePosixPath(git_dir)
    return str(p.parent) if p.name == ".git" else str(p)


def repo_name(repo: str) -> str:
    """'/srv/git/models.git' or 'git@host:team/models.git' → 'models' (safe for an id)."""
    last = re.split(r"[/:]", repo.rstrip("/"))[-1]
    last = last.removesuffix(".git") or "repo"
    return _NAME_UNSAFE.sub("-", last).strip("-") or "repo"


def push_event(repo: str, ref: str, sha: str, spec: str = DEFAULT_SPEC) -> dict[str, Any]:
    """The `canaryflow.git.push` event as Prefect's Event fields (event, resource, payload)."""
    if not _SHA.match(sha):
        raise GitHookError(f"sha {sha!r} is not a full 40-hex commit id")
    if not ref.startswith("refs/"):
        raise GitHookError(f"ref {ref!r} is not a full ref name such as 'refs/heads/main'")
    name = repo_name(repo)
    return {
        "event": EVENT_NAME,
        "resource": {
            "prefect.resource.id": f"{RESOURCE_PREFIX}{name}",
            "prefect.resource.name": name,
        },
        "payload": {"repo": repo, "ref": ref, "sha": sha, "spec": spec},
    }


@dataclass(frozen=True)
class HookSettings:
    """What the hook needs, read from the repo's `git config canaryflow.*`."""

    api_url: str
    spec: str = DEFAULT_SPEC
    branches: tuple[str, ...] = (DEFAULT_BRANCHES,)
    timeout_s: float = DEFAULT_TIMEOUT_S
    repo_url: str | None = None


def settings_from_config(config: Mapping[str, str], env: Mapping[str, str]) -> HookSettings:
    """Build HookSettings from `git config` values (any key case) and the hook's env."""
    cfg = {k.lower(): v for k, v in config.items()}
    api_url = cfg.get(KEY_API_URL.lower()) or env.get("PREFECT_API_URL", "")
    if not api_url:
        raise HookConfigError(
            "no Prefect API URL: set it with `python -m infra.githook install --repo PATH "
            "--api-url http://HOST:4200/api` or export PREFECT_API_URL for the git server"
        )
    raw_timeout = cfg.get(KEY_TIMEOUT.lower(), str(DEFAULT_TIMEOUT_S))
    try:
        timeout_s = float(raw_timeout)
    except ValueError:
        raise HookConfigError(f"{KEY_TIMEOUT}={raw_timeout!r} is not a number of seconds") from None
    if not 1 <= timeout_s <= 120:
        raise HookConfigError(f"{KEY_TIMEOUT}={timeout_s:g} must lie in 1..120 seconds")
    return HookSettings(
        api_url=check_api_url(api_url),
        spec=cfg.get(KEY_SPEC.lower()) or DEFAULT_SPEC,
        branches=split_patterns(cfg.get(KEY_BRANCHES.lower(), "")),
        timeout_s=timeout_s,
        repo_url=cfg.get(KEY_REPO_URL.lower()) or None,
    )


def check_api_url(url: str) -> str:
    """An http(s) URL, trailing slash removed; anything else is a HookConfigError."""
    if not re.match(r"^https?://[^/\s]+", url):
        raise HookConfigError(
            f"Prefect API URL {url!r} is not an http(s) URL such as http://127.0.0.1:4200/api"
        )
    return url.rstrip("/")


def resend_command(
    repo: str, ref: str, sha: str, spec: str, api_url: str, *, python: str = "python", cwd: str = ""
) -> str:
    """The command that sends the same event by hand (printed when the hook could not)."""
    args = ["--repo", repo, "--ref", ref, "--sha", sha, "--spec", spec, "--api-url", api_url]
    cmd = shlex.join([python, "-m", "infra.githook", "emit", *args])
    return f"cd {shlex.quote(cwd)} && {cmd}" if cwd else cmd
