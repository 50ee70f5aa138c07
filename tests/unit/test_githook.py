"""The git push hook: pure parts, install/uninstall in real repos, load_spec_at, the CI file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra.errors import SpecError
from infra.githook.__main__ import main, post_receive
from infra.githook.errors import (
    CommitNotFoundError,
    ForeignHookError,
    GitHookError,
    HookConfigError,
    NotAGitRepoError,
    RepoNotFoundError,
    SpecFileMissingError,
    SpecInvalidError,
    SpecParseError,
)
from infra.githook.event import (
    RefUpdate,
    parse_post_receive,
    push_event,
    ref_matches,
    refs_to_emit,
    repo_location,
    repo_name,
    settings_from_config,
    split_patterns,
)
from infra.githook.git import read_config
from infra.githook.install import BACKUP_SUFFIX, HookOptions, install, is_ours, uninstall
from infra.githook.spec_at import load_spec_at

ROOT = Path(__file__).resolve().parents[2]
A, B, Z = "a" * 40, "b" * 40, "0" * 40


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit_files(repo: Path, files: dict[str, str]) -> str:
    """Commit `files` into the work tree `repo` and return the commit sha."""
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "spec")
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    path = tmp_path / "models.git"
    subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    return path


# --- pure parts ---------------------------------------------------------------------------


def test_parse_post_receive_lines() -> None:
    text = f"{A} {B} refs/heads/main\n\n{B} {Z} refs/heads/old\n"
    assert parse_post_receive(text) == [
        RefUpdate(A, B, "refs/heads/main"),
        RefUpdate(B, Z, "refs/heads/old"),
    ]
    assert parse_post_receive(text)[1].deleted
    assert parse_post_receive("") == []


@pytest.mark.parametrize("line", ["garbage", f"{A} refs/heads/main", f"{A} xyz refs/heads/m"])
def test_parse_post_receive_rejects_malformed(line: str) -> None:
    with pytest.raises(GitHookError, match="line 1"):
        parse_post_receive(line)


def test_patterns_and_filtering() -> None:
    assert split_patterns("") == ("refs/heads/*",)
    assert split_patterns("refs/heads/main, refs/heads/rel/*") == (
        "refs/heads/main",
        "refs/heads/rel/*",
    )
    with pytest.raises(HookConfigError, match="full ref pattern"):
        split_patterns("main")
    assert ref_matches("refs/heads/feature/x", ["refs/heads/*"])
    assert not ref_matches("refs/tags/v1", ["refs/heads/*"])
    assert not ref_matches("refs/heads/dev", ["refs/heads/main"])
    updates = [
        RefUpdate(A, B, "refs/heads/main"),
        RefUpdate(B, Z, "refs/heads/main"),  # deletion: never an event
        RefUpdate(A, B, "refs/heads/dev"),
        RefUpdate(Z, B, "refs/tags/v1"),
    ]
    assert refs_to_emit(updates, ["refs/heads/main"]) == [updates[0]]
    assert refs_to_emit(updates, ["refs/heads/*"]) == [updates[0], updates[2]]


def test_repo_names_and_location() -> None:
    assert repo_name("/srv/git/models.git") == "models"
    assert repo_name("/srv/work/models/") == "models"
    assert repo_name("git@github.com:team/my models.git") == "my-models"
    assert repo_name("https://git.example.com/team/llm.git") == "llm"
    assert repo_location("/srv/work/models/.git") == "/srv/work/models"
    assert repo_location("/srv/git/models.git") == "/srv/git/models.git"


def test_push_event_shape() -> None:
    event = push_event("/srv/git/models.git", "refs/heads/main", A, "specs/release.yaml")
    assert event == {
        "event": "canaryflow.git.push",
        "resource": {
            "prefect.resource.id": "canaryflow.repo.models",
            "prefect.resource.name": "models",
        },
        "payload": {
            "repo": "/srv/git/models.git",
            "ref": "refs/heads/main",
            "sha": A,
            "spec": "specs/release.yaml",
        },
    }
    with pytest.raises(GitHookError, match="40-hex"):
        push_event("/r.git", "refs/heads/main", "abc")
    with pytest.raises(GitHookError, match="full ref"):
        push_event("/r.git", "main", A)


def test_settings_from_config() -> None:
    cfg = {"canaryflow.apiurl": "http://h:4200/api/", "canaryflow.branches": "refs/heads/main"}
    s = settings_from_config(cfg, {})
    assert (s.api_url, s.branches, s.spec, s.timeout_s) == (
        "http://h:4200/api",
        ("refs/heads/main",),
        "release.yaml",
        10.0,
    )
    assert settings_from_config({}, {"PREFECT_API_URL": "http://e/api"}).api_url == "http://e/api"
    with pytest.raises(HookConfigError, match="no Prefect API URL"):
        settings_from_config({}, {})
    with pytest.raises(HookConfigError, match="not an http"):
        settings_from_config({"canaryflow.apiurl": "localhost:4200"}, {})
    with pytest.raises(HookConfigError, match=r"1\.\.120"):
        settings_from_config({"canaryflow.apiurl": "http://h/api", "canaryflow.timeout": "0"}, {})


# --- install / uninstall ------------------------------------------------------------------


def test_install_bare_is_idempotent_and_records_settings(bare: Path) -> None:
    opts = HookOptions(api_url="http://127.0.0.1:4200/api", branches="refs/heads/main")
    install(bare, opts)
    hook = bare / "hooks" / "post-receive"
    first = hook.read_bytes()
    install(bare, opts)
    assert hook.read_bytes() == first
    assert is_ours(hook)
    assert hook.stat().st_mode & 0o111
    cfg = read_config(bare)
    assert cfg["canaryflow.apiurl"] == "http://127.0.0.1:4200/api"
    assert cfg["canaryflow.branches"] == "refs/heads/main"
    assert cfg["canaryflow.spec"] == "release.yaml"
    assert cfg["canaryflow.root"] == str(ROOT)
    assert Path(cfg["canaryflow.python"]).exists()
    assert not list((bare / "hooks").glob("*.canaryflow-*"))
    install(bare, HookOptions())  # re-install without a URL drops the recorded one
    assert "canaryflow.apiurl" not in read_config(bare)


def test_install_non_bare_uses_dot_git_hooks(work: Path) -> None:
    install(work, HookOptions(api_url="http://h/api"))
    assert is_ours(work / ".git" / "hooks" / "post-receive")


def test_install_refuses_non_repos(tmp_path: Path, work: Path) -> None:
    with pytest.raises(NotAGitRepoError, match="not a git repository"):
        install(_plain_dir(tmp_path), HookOptions())
    with pytest.raises(NotAGitRepoError, match="not a directory"):
        install(tmp_path / "nope", HookOptions())
    (work / "sub").mkdir()
    with pytest.raises(NotAGitRepoError, match="not its root"):
        install(work / "sub", HookOptions())


def _plain_dir(tmp_path: Path) -> Path:
    plain = tmp_path / "plain"
    plain.mkdir()
    return plain


def test_install_refuses_foreign_hook_unless_forced(bare: Path) -> None:
    hook = bare / "hooks" / "post-receive"
    hook.write_text("#!/bin/sh\necho mine\n")
    with pytest.raises(ForeignHookError, match="--force"):
        install(bare, HookOptions())
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    assert "backup" in install(bare, HookOptions(), force=True)
    assert is_ours(hook)
    backup = hook.with_name("post-receive" + BACKUP_SUFFIX)
    assert backup.read_text() == "#!/bin/sh\necho mine\n"
    install(bare, HookOptions(), force=True)  # ours now: no second backup needed
    uninstall(bare)
    assert hook.read_text() == "#!/bin/sh\necho mine\n"
    assert not backup.exists()
    assert read_config(bare) == {}
    with pytest.raises(ForeignHookError, match="leaving it alone"):
        uninstall(bare)


def test_uninstall_is_idempotent(bare: Path) -> None:
    install(bare, HookOptions(api_url="http://h/api"))
    assert "removed" in uninstall(bare)
    assert not (bare / "hooks" / "post-receive").exists()
    assert "nothing to uninstall" in uninstall(bare)


@pytest.mark.parametrize(
    ("opts", "match"),
    [
        (HookOptions(api_url="ftp://x"), "not an http"),
        (HookOptions(branches="main"), "full ref pattern"),
        (HookOptions(spec="../x.yaml"), "inside the repository"),
        (HookOptions(timeout_s=0), r"1\.\.120"),
        (HookOptions(root=Path("/")), "not a canaryflow checkout"),
    ],
)
def test_install_rejects_bad_options(bare: Path, opts: HookOptions, match: str) -> None:
    with pytest.raises(GitHookError, match=match):
        install(bare, opts)
    assert not (bare / "hooks" / "post-receive").exists()


def test_cli_install_error_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--repo", str(_plain_dir(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert err.startswith("canaryflow: NotAGitRepoError:")
    assert err.count("\n") == 1


def test_post_receive_reports_config_problems_without_raising(bare: Path) -> None:
    install(bare, HookOptions())  # no API URL recorded, none in env
    lines = post_receive(bare, f"{A} {B} refs/heads/main\n", {})
    assert lines
    assert "NOT sent: HookConfigError: no Prefect API URL" in lines[0]
    install(bare, HookOptions(api_url="http://h/api", branches="refs/heads/main"))
    assert post_receive(bare, f"{A} {B} refs/heads/dev\n", {}) == [
        "canaryflow: no event: refs/heads/dev not in refs/heads/main"
    ]
    assert post_receive(bare, f"{A} {Z} refs/heads/main\n", {}) == []


def run_hook(bare: Path, stdin: str) -> subprocess.CompletedProcess[str]:
    """Run the installed sh hook as git would (cwd and GIT_DIR = the bare repo)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    return subprocess.run(
        [str(bare / "hooks" / "post-receive")],
        input=stdin,
        cwd=bare,
        env={**env, "GIT_DIR": "."},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_sh_hook_reports_a_broken_install_and_exits_zero(bare: Path) -> None:
    install(bare, HookOptions(api_url="http://h/api"))
    git(bare, "config", "canaryflow.python", "/nonexistent/python")
    out = run_hook(bare, f"{A} {B} refs/heads/main\n")
    assert out.returncode == 0
    assert "canaryflow: push event NOT sent" in out.stderr
    assert "python '/nonexistent/python' is missing" in out.stderr


def test_sh_hook_runs_python_and_reports_config_errors(bare: Path) -> None:
    install(bare, HookOptions())  # no API URL anywhere
    out = run_hook(bare, f"{A} {B} refs/heads/main\n")
    assert out.returncode == 0
    assert out.stderr.startswith("canaryflow: push event NOT sent: HookConfigError: no Prefect")


def test_emit_dry_run_prints_the_event(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["emit", "--repo", "https://git.example.com/t/llm.git", "--ref", "refs/heads/main"]
    assert main([*argv, "--sha", A, "--dry-run"]) == 0
    event = json.loads(capsys.readouterr().out)
    assert event["resource"]["prefect.resource.id"] == "canaryflow.repo.llm"
    assert event["payload"]["repo"] == "https://git.example.com/t/llm.git"


# --- load_spec_at -------------------------------------------------------------------------


def test_load_spec_at_reads_the_commit_not_the_tree(work: Path) -> None:
    first = commit_files(work, {"release.yaml": "model: models:/tiny-chat@challenger\n"})
    second = commit_files(
        work,
        {
            "release.yaml": "model: models:/tiny-chat/7\ncanary:\n  steps: [20, 60]\n",
            "specs/r.json": json.dumps({"model": "models:/other@x"}),
        },
    )
    assert load_spec_at(str(work), first, "release.yaml").model == "models:/tiny-chat@challenger"
    spec = load_spec_at(str(work), second, "./release.yaml")
    assert (spec.model, spec.canary.steps) == ("models:/tiny-chat/7", [20, 60])
    assert load_spec_at(str(work), second, "specs/r.json").model == "models:/other@x"
    bare = work.parent / "clone.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    assert load_spec_at(str(bare), first).model == "models:/tiny-chat@challenger"


def test_load_spec_at_named_errors(work: Path, tmp_path: Path) -> None:
    sha = commit_files(
        work,
        {
            "release.yaml": "model: [unclosed\n",
            "list.yaml": "- a\n",
            "bad.yaml": "model: models:/x@y\ntarget: moon\ncanary:\n  steps: [50, 10]\n",
        },
    )
    cases: list[tuple[str, str, str, type[SpecError], str]] = [
        (str(tmp_path / "none"), sha, "release.yaml", RepoNotFoundError, "does not exist"),
        (str(_plain_dir(tmp_path)), sha, "release.yaml", RepoNotFoundError, "not a git"),
        ("https://h/r.git", sha, "release.yaml", RepoNotFoundError, "remote URL"),
        (str(work), "c" * 40, "release.yaml", CommitNotFoundError, "not in"),
        (str(work), "--all", "release.yaml", CommitNotFoundError, "not a commit id"),
        (str(work), sha, "missing.yaml", SpecFileMissingError, "there: bad.yaml"),
        (str(work), sha, "../etc/passwd", SpecFileMissingError, "relative"),
        (str(work), sha, "release.yaml", SpecParseError, "not valid YAML"),
        (str(work), sha, "list.yaml", SpecParseError, "mapping"),
        (str(work), sha, "bad.yaml", SpecInvalidError, r"2 error\(s\)\): target: "),
    ]
    for repo, rev, path, error, match in cases:
        with pytest.raises(error, match=match):
            load_spec_at(repo, rev, path)
    with pytest.raises(SpecInvalidError, match=r"canary\.steps: .*increase strictly"):
        load_spec_at(str(work), sha, "bad.yaml")


# --- the hosted-git CI example -------------------------------------------------------------


def test_ci_workflow_runs_the_release_deployment() -> None:
    wf = yaml.safe_load((ROOT / "infra" / "ci" / "github-release.yml").read_text())
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads a bare `on` key as true
    assert on["push"]["branches"] == ["main"]
    steps = wf["jobs"]["release"]["steps"]
    runs = " ".join(s.get("run", "") for s in steps)
    assert "prefect deployment run release/release --params -" in runs
    env = wf["jobs"]["release"]["env"]
    assert {"PREFECT_API_URL", "PREFECT_API_KEY"} <= set(env)
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    flow_name = _flow_name(ROOT / "flows" / "release.py")
    assert any(d["name"] == "release" for d in deployments)
    assert flow_name == "release"


def _flow_name(path: Path) -> str:
    text = path.read_text()
    start = text.index('@flow(name="') + len('@flow(name="')
    return text[start : text.index('"', start)]


def test_module_entry_point_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infra.githook", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "install" in out.stdout
    assert "post-receive" in out.stdout
