"""A real `git push` through the installed hook reaches a real Prefect server.

One Prefect server per module (tests/fixtures/prefect_server.py, via infra.services). Each
test makes a bare repo, installs the hook with `python -m infra.githook install`, clones it,
commits a release.yaml and pushes. Checked: the push succeeds, the pusher sees one clear
`remote: canaryflow:` line, and the server stored `canaryflow.git.push` with that sha, ref and
spec; a down or silent API never fails or hangs the push; a deployment trigger written like
the one prefect.yaml needs creates a flow run with the pushed sha as its parameter; and the
hosted-git CI example's shell steps start a run of release/release with the spec file.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.prefect_server import (
    PrefectServer,
    free_port,
    running_prefect_server,
    wait_for_events,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
SPEC = "model: models:/tiny-chat@challenger\ncanary:\n  steps: [10, 50]\n"


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with running_prefect_server(tmp_path_factory.mktemp("prefect")) as server:
        yield server


def git(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(cwd), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def hooked_repo(tmp_path: Path, *install_args: str) -> tuple[Path, Path]:
    """A bare repo with the hook installed, and a clone with release.yaml committed."""
    bare, clone = tmp_path / "models.git", tmp_path / "clone"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run(
        [sys.executable, "-m", "infra.githook", "install", "--repo", str(bare), *install_args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True, capture_output=True)
    (clone / "release.yaml").write_text(SPEC)
    assert git(clone, "add", "release.yaml").returncode == 0
    ident = ["-c", "user.name=t", "-c", "user.email=t@t"]
    assert git(clone, *ident, "commit", "-q", "-m", "release v2").returncode == 0
    return bare, clone


def push(clone: Path) -> tuple[subprocess.CompletedProcess[str], float, str]:
    """Push main from the clone; returns the result, its duration and the pushed sha."""
    sha = git(clone, "rev-parse", "HEAD").stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    started = time.monotonic()
    out = git(clone, "push", "-q", "origin", "HEAD:refs/heads/main", env=env)
    return out, time.monotonic() - started, sha


def test_push_emits_the_event(prefect_api: PrefectServer, tmp_path: Path) -> None:
    bare, clone = hooked_repo(tmp_path, "--api-url", prefect_api.api_url)
    out, took, sha = push(clone)
    assert out.returncode == 0, out.stderr
    assert f"remote: canaryflow: sent canaryflow.git.push refs/heads/main {sha[:12]}" in (
        out.stderr
    )
    assert git(bare, "rev-parse", "main").stdout.strip() == sha
    (event,) = wait_for_events(
        prefect_api.api_url, "canaryflow.git.push", lambda e: e["payload"]["sha"] == sha
    )
    assert event["resource"]["prefect.resource.id"] == "canaryflow.repo.models"
    assert event["payload"] == {
        "repo": str(bare.resolve()),
        "ref": "refs/heads/main",
        "sha": sha,
        "spec": "release.yaml",
    }
    assert took < 10


def test_push_succeeds_when_the_api_is_down(tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}/api"
    _, clone = hooked_repo(tmp_path, "--api-url", down)
    out, took, sha = push(clone)
    assert out.returncode == 0, out.stderr
    assert "remote: canaryflow: push event NOT sent: EmitError: cannot send the event" in (
        out.stderr
    )
    assert down in out.stderr
    assert f"--sha {sha}" in out.stderr  # the re-send command
    assert took < 10


def test_push_is_bounded_when_the_api_never_answers(tmp_path: Path) -> None:
    with socket.socket() as silent:  # accepts TCP connections, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/api"
        _, clone = hooked_repo(tmp_path, "--api-url", url, "--timeout", "4")
        out, took, _ = push(clone)
    assert out.returncode == 0, out.stderr
    assert "remote: canaryflow: push event NOT sent" in out.stderr
    assert took < 4 + 3, f"push took {took:.1f} s with a 4 s bound"


def test_push_of_an_unmatched_branch_sends_nothing(
    prefect_api: PrefectServer, tmp_path: Path
) -> None:
    _, clone = hooked_repo(
        tmp_path, "--api-url", prefect_api.api_url, "--branches", "refs/heads/release/*"
    )
    out, _, _ = push(clone)
    assert out.returncode == 0, out.stderr
    assert "remote: canaryflow: no event: refs/heads/main not in refs/heads/release/*" in (
        out.stderr
    )


def test_a_deployment_trigger_starts_a_run_with_the_pushed_sha(
    prefect_api: PrefectServer, tmp_path: Path
) -> None:
    """The trigger shape prefect.yaml needs (match/expect, parameters from the payload)."""
    params = {k: "{{ event.payload." + k + " }}" for k in ("repo", "ref", "sha", "spec")}
    trigger = {
        "type": "event",
        "enabled": True,
        "match": {"prefect.resource.id": "canaryflow.repo.*"},
        "expect": ["canaryflow.git.push"],
        "parameters": params,
    }
    _deploy(
        prefect_api,
        tmp_path / "project",
        "@flow(name='git-push-probe')\ndef probe(repo: str, ref: str, sha: str, spec: str): ...\n",
        {"name": "probe", "entrypoint": "probe.py:probe", "triggers": [trigger]},
    )
    time.sleep(2)  # the triggers service picks up the new automation
    _, clone = hooked_repo(tmp_path, "--api-url", prefect_api.api_url)
    out, _, sha = push(clone)
    assert out.returncode == 0, out.stderr
    run = _wait_for_flow_run(prefect_api.api_url, lambda p: p.get("sha") == sha)
    assert run["parameters"] == {
        "repo": str((tmp_path / "models.git").resolve()),
        "ref": "refs/heads/main",
        "sha": sha,
        "spec": "release.yaml",
    }


def test_ci_workflow_steps_start_release_release(
    prefect_api: PrefectServer, tmp_path: Path
) -> None:
    """infra/ci/github-release.yml's shell steps, run as Actions would, against release/release
    (a stand-in flow named `release` with a `spec` parameter, so no model stack is needed)."""
    _deploy(
        prefect_api,
        tmp_path / "project",
        "@flow(name='release')\ndef release(spec: dict): ...\n",
        {"name": "release", "entrypoint": "probe.py:release"},
    )
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "release.yaml").write_text(SPEC)
    sha = "f" * 40
    env = {
        **os.environ,
        **prefect_api.env,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SPEC": "release.yaml",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
    }
    wf = yaml.safe_load((ROOT / "infra" / "ci" / "github-release.yml").read_text())
    for step in wf["jobs"]["release"]["steps"]:
        if "run" in step and "pip install" not in step["run"]:
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, f"{step['name']}: {done.stdout}{done.stderr}"
    run = _wait_for_flow_run(prefect_api.api_url, lambda p: "spec" in p and "sha" not in p)
    assert run["parameters"] == {"spec": yaml.safe_load(SPEC)}
    assert f"git-sha:{sha}" in run["tags"]
    assert run["name"] == f"release-{sha[:12]}"


def _deploy(
    server: PrefectServer, project: Path, flow_src: str, deployment: dict[str, Any]
) -> None:
    """`prefect deploy` one deployment of `flow_src` (in probe.py) to its own process pool."""
    project.mkdir()
    (project / "probe.py").write_text("from prefect import flow\n\n\n" + flow_src)
    pool = f"pool-{deployment['name']}"
    doc = {"name": "probe", "deployments": [{**deployment, "work_pool": {"name": pool}}]}
    (project / "prefect.yaml").write_text(json.dumps(doc))  # JSON is YAML
    env = {**os.environ, **server.env}
    for argv in (
        [PREFECT, "work-pool", "create", pool, "--type", "process"],
        [PREFECT, "--no-prompt", "deploy", "--all"],
    ):
        done = subprocess.run(
            argv, cwd=project, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _wait_for_flow_run(
    api_url: str, match: Callable[[dict[str, Any]], bool], timeout_s: float = 45.0
) -> dict[str, Any]:
    """Poll POST /flow_runs/filter until a run's parameters satisfy `match`."""
    deadline = time.monotonic() + timeout_s
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        req = urllib.request.Request(  # noqa: S310 - loopback test server
            f"{api_url}/flow_runs/filter",
            data=json.dumps({"limit": 50}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
            runs = json.load(resp)
        found = [r for r in runs if match(r.get("parameters", {}))]
        if found:
            return found[0]
        time.sleep(1)
    raise AssertionError(f"no matching flow run within {timeout_s:g} s; runs: {runs}")
