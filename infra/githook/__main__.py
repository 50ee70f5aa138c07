"""`python -m infra.githook`: install the push hook, or send a push event by hand.

    python -m infra.githook install --repo /srv/git/models.git --api-url http://127.0.0.1:4200/api
    python -m infra.githook uninstall --repo /srv/git/models.git
    python -m infra.githook emit --repo /srv/git/models.git --ref refs/heads/main --sha SHA
    python -m infra.githook post-receive --git-dir DIR < updates    # what the hook runs

Errors are one `canaryflow: NamedError: what is wrong and what to do` line, exit 1; the
post-receive command reports the same way but always exits 0 (a push must never fail on us).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from infra.errors import CanaryflowError
from infra.githook.emit import send_events
from infra.githook.errors import EmitError, HookConfigError
from infra.githook.event import (
    DEFAULT_BRANCHES,
    DEFAULT_SPEC,
    DEFAULT_TIMEOUT_S,
    EVENT_NAME,
    check_api_url,
    parse_post_receive,
    push_event,
    refs_to_emit,
    repo_location,
    resend_command,
    settings_from_config,
)
from infra.githook.git import read_config
from infra.githook.install import CANARYFLOW_ROOT, HookOptions, install, uninstall

_NOT_SENT = "canaryflow: push event NOT sent"


def _install(ns: argparse.Namespace) -> int:
    opts = HookOptions(
        spec=ns.spec,
        api_url=ns.api_url,
        branches=ns.branches,
        timeout_s=ns.timeout,
        repo_url=ns.repo_url,
        python=Path(ns.python),
    )
    print(f"canaryflow: {install(Path(ns.repo), opts, force=ns.force)}")
    return 0


def _uninstall(ns: argparse.Namespace) -> int:
    print(f"canaryflow: {uninstall(Path(ns.repo))}")
    return 0


def _emit(ns: argparse.Namespace) -> int:
    repo = (
        ns.repo if "://" in ns.repo or not Path(ns.repo).exists() else str(Path(ns.repo).resolve())
    )
    event = push_event(repo, ns.ref, ns.sha, ns.spec)
    if ns.dry_run:
        print(json.dumps(event, indent=2))
        return 0
    api_url = ns.api_url or os.environ.get("PREFECT_API_URL", "")
    if not api_url:
        raise HookConfigError("no Prefect API URL: pass --api-url or export PREFECT_API_URL")
    (event_id,) = send_events([event], check_api_url(api_url), ns.timeout)
    print(f"canaryflow: sent {EVENT_NAME} {ns.ref} {ns.sha[:12]} to {api_url} (event {event_id})")
    return 0


def post_receive(git_dir: Path, updates_text: str, env: dict[str, str]) -> list[str]:
    """Emit one event per matching pushed branch; returns the lines to print (never raises)."""
    started = time.monotonic()
    try:
        settings = settings_from_config(read_config(git_dir), env)
        updates = parse_post_receive(updates_text)
    except CanaryflowError as e:
        return [f"{_NOT_SENT}: {type(e).__name__}: {e}"]
    wanted = refs_to_emit(updates, settings.branches)
    if not wanted:
        pushed = " ".join(u.ref for u in updates if not u.deleted)
        branches = " ".join(settings.branches)
        return [f"canaryflow: no event: {pushed} not in {branches}"] if pushed else []
    repo = settings.repo_url or repo_location(str(git_dir.resolve()))
    events = [push_event(repo, u.ref, u.new, settings.spec) for u in wanted]
    budget = max(1.0, settings.timeout_s - 1.5 - (time.monotonic() - started))
    try:
        ids = send_events(events, settings.api_url, budget)
    except EmitError as e:
        resend = [
            resend_command(
                repo,
                u.ref,
                u.new,
                settings.spec,
                settings.api_url,
                python=sys.executable,
                cwd=str(CANARYFLOW_ROOT),
            )
            for u in wanted
        ]
        head = [f"{_NOT_SENT}: EmitError: {e}", "canaryflow: the push itself succeeded; re-send:"]
        return head + [f"canaryflow:   {cmd}" for cmd in resend]
    return [
        f"canaryflow: sent {EVENT_NAME} {u.ref} {u.new[:12]} spec={settings.spec} "
        f"to {settings.api_url} (event {i})"
        for u, i in zip(wanted, ids, strict=True)
    ]


def _post_receive(ns: argparse.Namespace) -> int:
    try:
        lines = post_receive(Path(ns.git_dir), sys.stdin.read(), dict(os.environ))
    except Exception as e:  # a hook must not print a traceback at the pusher
        lines = [f"{_NOT_SENT}: {type(e).__name__}: {e}"]
    for line in lines:
        print(line, file=sys.stderr if "NOT sent" in line else sys.stdout)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m infra.githook", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(required=True, metavar="COMMAND")
    ins = sub.add_parser("install", help="install the post-receive hook into a repository")
    ins.add_argument("--repo", required=True, help="bare repository, or a work tree root")
    ins.add_argument("--spec", default=DEFAULT_SPEC, help="ReleaseSpec file inside the repo")
    ins.add_argument("--api-url", help="Prefect API URL (default: the git server's env)")
    ins.add_argument(
        "--branches", default=DEFAULT_BRANCHES, help="ref patterns, space/comma separated"
    )
    ins.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="hook bound, s")
    ins.add_argument("--repo-url", help="send this as payload.repo instead of the local path")
    ins.add_argument("--python", default=sys.executable, help="python of the canaryflow venv")
    ins.add_argument("--force", action="store_true", help="replace a foreign hook (kept)")
    ins.set_defaults(run=_install)
    uni = sub.add_parser("uninstall", help="remove the hook and the canaryflow.* settings")
    uni.add_argument("--repo", required=True)
    uni.set_defaults(run=_uninstall)
    emi = sub.add_parser("emit", help=f"send one {EVENT_NAME} event")
    emi.add_argument("--repo", required=True, help="repository path or URL (payload.repo)")
    emi.add_argument("--ref", required=True, help="full ref, e.g. refs/heads/main")
    emi.add_argument("--sha", required=True, help="the pushed commit (40 hex)")
    emi.add_argument("--spec", default=DEFAULT_SPEC, help="ReleaseSpec file inside the repo")
    emi.add_argument("--api-url", help="Prefect API URL (default: $PREFECT_API_URL)")
    emi.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds")
    emi.add_argument("--dry-run", action="store_true", help="print the event, send nothing")
    emi.set_defaults(run=_emit)
    pr = sub.add_parser("post-receive", help="read post-receive stdin and emit (hook use)")
    pr.add_argument("--git-dir", default=os.environ.get("GIT_DIR", "."))
    pr.set_defaults(run=_post_receive)
    return p


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        return int(ns.run(ns))
    except CanaryflowError as e:
        print(f"canaryflow: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
