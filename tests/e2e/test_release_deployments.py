"""Releases through `prefect deployment run`, a git push and the drift → retrain → release
chain, on the real stack: Prefect server + process worker, MLflow, Docker engine, HAProxy,
Prometheus, vLLM containers, Locust.

The tests run in file order on one stack and one Docker target:
1. first release of the trained model: deployed as the stable, no canary (promoted); then
   `canaryflow release SPEC --watch` of the serving version: followed to "aborted", exit 3;
2. an identical model (same weights, another version) through a real canary step at 50%:
   every check passes → promoted, record in Prefect artifacts and MLflow;
3. the second model, a Qwen2 JSON extractor, on a target of its own (`target_settings`),
   judged on its own set with `json_schema` + `fields`: the good one is deployed first
   (promoted), then a fine-tune that broke its JSON, offline gate off so only the canary can
   catch it: the canary's quality check fails → rolled back, version tagged rejected; then
   the promoted (test 2) and rolled-back records are opened in headless Chromium as a person
   would: the Prefect UI's artifact page (verdict, pictures that load from MLflow, links a
   browser follows) and the MLflow UI's run and picture pages; screenshots in
   $CANARYFLOW_SCREENSHOTS or tmp;
4. a push to a bare repo with the hook installed starts a release run with that sha;
5. drifted live traffic → drift-check emits the event → retrain runs a team-style trainer
   (tests/fixtures/user_trainer.py) → its release promotes the candidate; a failing trainer
   releases nothing;
6. after all of that, no planted secret (the router's API key; fake HF_TOKEN and
   OPENAI_API_KEY in every stack process's environment) is in any image, container, log,
   capture file, Prefect record, MLflow record or state file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.image.build import BuiltImage
from infra.load.traffic import send_traffic
from infra.prefect_api import PREFECT, verdict_of
from infra.targets.docker import DockerTarget
from infra.targets.docker_containers import IMAGE_LABEL, TARGET_LABEL
from tests.fixtures import json_release, models
from tests.fixtures.browser import check_record, chromium, look
from tests.fixtures.docker_target import sweep
from tests.fixtures.fault_report import summarize
from tests.fixtures.secret_scan import (
    SecretScan,
    scan_containers,
    scan_images,
    scan_mlflow,
    scan_prefect,
    scan_tree,
)
from tests.fixtures.stack import ROOT, Stack, mlflow_runs, running_stack, serving_version
from validation import manifest
from validation.golden import TaskSpec, sample

pytestmark = pytest.mark.e2e

NAME = "tiny-chat"
RELEASE = "release/release"
# One canary step at 50% (both variants loaded alike), 100 requests per variant minimum.
# Latency and TTFT judged at p50 only: the default p95/p99 pass needs ~2200 requests per
# variant (595 s on CI for test 2); their false-alarm rate and power are measured in
# bench/sequential.py and the demo runs the defaults. A 150 s deadline (the demo's): on
# loaded CI cores an identical canary's latency may not be shown within tolerance, and
# then advances with no harm shown (on_inconclusive: advance) instead of waiting 300 s.
P50 = {"quantiles": [0.5]}
FAST_CANARY: dict[str, Any] = {
    "canary": {
        "steps": [50],
        "policy": {"min_samples": 100, "latency": P50, "ttft": P50, "progress_deadline_s": 150},
    },
    "load": {"users": 6, "max_tokens": 8, "max_step_s": 240},
}
EVAL_ROWS = 200


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_labels: dict[str, str], serving_image: object
) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack"), e2e_labels) as s:
        yield s


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The release's own set: 200 of the demo's held-out rows as a file the spec names
    (the demo judges on all 500; 200 keep each offline scoring under half a minute here)."""
    from infra.demo.evaluation import SCORERS, demo_rows

    path = tmp_path_factory.mktemp("evaluation") / "tiny-chat-arithmetic.jsonl"
    rows = demo_rows()[:EVAL_ROWS]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return {"path": str(path), "scorers": SCORERS}


def of(model: Path, evaluation: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A release spec of a model directory, registered as NAME, judged on `evaluation`."""
    return {"model": str(model), "registered_name": NAME, "evaluation": evaluation, **extra}


RUNS: list[tuple[str, str]] = []  # the release runs' (id, model name), in order


def release(stack: Stack, spec: dict[str, Any], timeout_s: float = 900) -> tuple[str, str]:
    """(state, verdict) of a `prefect deployment run release/release` run."""
    run_id = stack.api.run_deployment(RELEASE, {"spec": spec})
    name = spec["registered_name"]
    RUNS.append((run_id, name))
    run = stack.api.wait(run_id, timeout_s)
    record = stack.api.markdown(run_id, f"release-{name}")
    print(f"{RELEASE} {spec['model']}: {run['state_name']}\n{record}")
    return run["state_type"], verdict_of(record) or ""


def test_1_first_release_deploys_the_stable(
    stack: Stack, trained_model: Path, evaluation: dict[str, Any]
) -> None:
    state, verdict = release(stack, of(trained_model, evaluation))
    assert (state, verdict) == ("COMPLETED", "promoted")
    now = stack.target.status()
    assert now.stable is not None
    assert now.stable.model_version == "1"
    assert now.canary is None


def test_1_canaryflow_release_watches_a_run_to_its_verdict(stack: Stack, tmp_path: Path) -> None:
    """`canaryflow release SPEC --watch` as a person types it: a spec file naming the version
    that serves already → the run is submitted, followed, and ends aborted (exit 3)."""
    spec = tmp_path / "release.yaml"
    spec.write_text(f"model: models:/{NAME}/{serving_version(stack)}\n")
    env = {**stack.env, "PREFECT_API_URL": stack.api.api_url}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "canaryflow"), "release", str(spec),
                           "--watch"], env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    print(done.stdout, done.stderr)
    assert done.returncode == 3, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("spec valid; submitting")
    assert lines[1].startswith(f"started {RELEASE} run ")
    assert any(line.startswith("  … ") for line in lines)  # followed, not only submitted
    assert "ABORTED after" in done.stdout
    assert "already serves as the stable" in done.stdout
    assert "?tab=Artifacts" in lines[-1]


def test_2_identical_canary_passes_every_check(
    stack: Stack, trained_model: Path, tmp_path: Path, evaluation: dict[str, Any]
) -> None:
    same = shutil.copytree(trained_model, tmp_path / "same-weights")
    (same / "NOTICE").write_text("same weights as v1, registered again as v2\n")
    manifest.write(same)  # new content digest → a new version with v1's weights
    state, verdict = release(stack, of(same, evaluation, **FAST_CANARY))
    assert (state, verdict) == ("COMPLETED", "promoted")
    assert stack.target.status().stable.model_version == "2"  # type: ignore[union-attr]
    listed = subprocess.run([str(PREFECT), "artifact", "ls"],
                            env=stack.env, capture_output=True, text=True, check=True)  # fmt: skip
    assert "release-tiny-chat" in listed.stdout
    runs = {r.data.tags["canaryflow.model_version"]: r for r in mlflow_runs(stack)}
    assert runs["2"].data.tags["canaryflow.verdict"] == "promoted"
    # the step's quality evidence, whichever run of the step decided it
    assert any(re.match(r"step50\.run\d+\.quality", k) for k in runs["2"].data.metrics)


@pytest.fixture(scope="module")
def json_target(
    stack: Stack, e2e_labels: dict[str, str]
) -> Iterator[tuple[dict[str, Any], DockerTarget]]:
    settings, target = json_release.json_target(stack, e2e_labels)
    try:
        yield settings, target
    finally:
        target.destroy()
        sweep(target.client, target.config.name)


def test_3_second_model_is_deployed_on_its_own_target(
    stack: Stack, json_target: tuple[dict[str, Any], DockerTarget], tmp_path: Path
) -> None:
    settings, target = json_target
    evaluation = json_release.json_evaluation(tmp_path)
    spec = {"model": str(models.trained_json()), "registered_name": json_release.JSON_NAME,
            "evaluation": evaluation, "target_settings": settings}  # fmt: skip
    assert release(stack, spec) == ("COMPLETED", "promoted")
    now = target.status()
    assert now.stable is not None
    assert (now.stable.model_name, now.stable.model_version) == (json_release.JSON_NAME, "1")
    assert serving_version(stack) == "2"  # tiny-chat's target is not touched
    answer = json_release.ask(settings, target, json_release.first_row(evaluation))
    assert isinstance(json.loads(answer), dict), answer  # JSON through its own router


def test_3_fine_tune_that_breaks_the_json_is_rolled_back_by_the_canary(
    stack: Stack, json_target: tuple[dict[str, Any], DockerTarget], tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    settings, target = json_target
    if target.status().stable is None:
        pytest.skip("the good JSON model was not deployed")
    gate_off = {**json_release.json_evaluation(tmp_path), "threshold": 0.0, "margin": 1.0}
    load = {**FAST_CANARY["load"], "max_tokens": None}  # the set's longest expected answer
    spec = {"model": str(models.broken_json_fine_tune()), "evaluation": gate_off,
            "registered_name": json_release.JSON_NAME, "target_settings": settings,
            "canary": FAST_CANARY["canary"], "load": load}  # fmt: skip
    assert release(stack, spec) == ("COMPLETED", "rolled_back")
    now = target.status()
    assert now.stable is not None
    assert now.stable.model_version == "1"
    assert now.canary is None
    assert now.canary_percent == 0
    tags = MlflowClient(stack.mlflow_uri).get_model_version(json_release.JSON_NAME, "2").tags
    assert tags["canaryflow.rejected"] == "true"
    assert "quality" in tags["canaryflow.rejected_reasons"]


def test_3_records_open_in_a_browser(stack: Stack, tmp_path: Path) -> None:
    """The two canary records (test 2 promoted, test 3 rolled back) as a browser shows them."""
    if len(RUNS) < 4:
        pytest.skip("tests 1-3 did not all run: no canary records to look at")
    shots = Path(os.environ.get("CANARYFLOW_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    prefect_ui = stack.api.api_url.removesuffix("/api")
    with chromium() as browser:
        for (run_id, name), verdict in ((RUNS[1], "promoted"), (RUNS[3], "rolled_back")):
            art = next(a for a in stack.api.artifacts(run_id) if a.get("key") == f"release-{name}")
            check_record(browser, f"{prefect_ui}/artifacts/artifact/{art['id']}", verdict, shots)


def test_4_git_push_starts_a_release_of_the_pushed_spec(
    stack: Stack, tmp_path: Path, trained_model: Path
) -> None:
    bare, work = tmp_path / "app.git", tmp_path / "app"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run([".venv/bin/python", "-m", "infra.githook", "install", "--repo", str(bare),
                    "--api-url", stack.api.api_url], check=True, env=stack.env)  # fmt: skip
    subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
    # The version that serves now: the release sees it already serving → aborted, fast.
    version = serving_version(stack)
    (work / "release.yaml").write_text(f"model: models:/{NAME}/{version}\n")
    subprocess.run([*git, "-C", str(work), "add", "release.yaml"], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", f"release v{version}"], check=True)
    sha = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], check=True,
                         capture_output=True, text=True).stdout.strip()  # fmt: skip
    pushed_at = time.time()
    subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], check=True,
                   env={**os.environ, **stack.env})  # fmt: skip
    run = stack.api.wait_for_new_run(RELEASE, after=pushed_at, timeout_s=120)
    assert run["parameters"]["git"]["sha"] == sha
    assert run["parameters"]["git"]["ref"] == "refs/heads/main"
    final = stack.api.wait(run["id"], 600)
    record = stack.api.markdown(run["id"], "release-tiny-chat") or ""
    print(record)
    assert final["state_type"] == "COMPLETED"
    assert verdict_of(record) == "aborted"  # it already serves: nothing to release
    assert sha in record


USER_TRAINER = ROOT / "tests" / "fixtures" / "user_trainer.py"


def test_5_drift_check_retrain_and_release_chain(
    stack: Stack, evaluation: dict[str, Any], tmp_path: Path
) -> None:
    """Drifted traffic → drift-check's event → retrain with a team's own fine-tuning script
    (tests/fixtures/user_trainer.py: plain transformers, not the demo's trainer) → a release
    of its candidate, promoted through a canary; then a trainer that fails releases nothing."""
    from mlflow.tracking import MlflowClient

    router = stack.target.status().router_url
    assert router is not None
    key = stack.target.api_key_file.read_text().strip()
    champion = serving_version(stack)  # v2 after test 2
    client = MlflowClient(stack.mlflow_uri)
    new = str(max(int(v.version) for v in client.search_model_versions(f"name = '{NAME}'")) + 1)
    drifted = sample(TaskSpec(min_operand=100, max_operand=199), 150, seed=7)
    started = time.time()
    sent = send_traffic(router, key, NAME, drifted)
    assert sent.ok == 150
    dep = stack.api.get("/deployments/name/retrain/retrain")
    spec = {**dep["parameters"]["spec"], "model_name": NAME, "window_s": 600}
    # prefect.yaml names the demo's MLflow dataset, which `make demo` registers and this
    # stack never did: judge (and keep out of training) the module's set file instead
    spec["release_spec"] = {**spec["release_spec"], "evaluation": evaluation, **FAST_CANARY}
    # A few small steps on the users' rows: the candidate stays as good as its parent, so
    # the chain ends with a canary that promotes it.
    user = ["{python}", str(USER_TRAINER), "{request}", "--steps", "4", "--lr", "1e-5"]
    spec["trainer"] = {"kind": "command", "command": user, "timeout_s": 600}
    stack.api.patch(f"/deployments/{dep['id']}", {"parameters": {"spec": spec}})
    check = stack.api.run_deployment("drift-check/drift-check", {"spec": {
        "model_name": NAME, "evaluation": evaluation, "since": started,
        "min_rows": 100}})  # fmt: skip
    stack.api.wait(check, 300)
    record = stack.api.markdown(check, "drift-tiny-chat") or ""
    print(record)
    assert verdict_of(record) == "drift"
    retrain = stack.api.wait_for_new_run("retrain/retrain", after=started, timeout_s=120)
    assert retrain["parameters"]["drift"]["model"] == NAME
    assert retrain["parameters"]["drift"]["drift_share"] >= 0.5
    assert stack.api.wait(retrain["id"], 600)["state_type"] == "COMPLETED"
    print(stack.api.markdown(retrain["id"], "retrain-tiny-chat") or "")  # its lineage tags
    follow = stack.api.wait_for_new_run(RELEASE, after=started, timeout_s=60)
    assert follow["parameters"]["spec"]["model"] == f"models:/{NAME}/{new}"
    assert stack.api.wait(follow["id"], 900)["state_type"] == "COMPLETED"
    released = stack.api.markdown(follow["id"], "release-tiny-chat") or ""
    print(released)
    assert verdict_of(released) == "promoted", released
    assert serving_version(stack) == new
    tags = client.get_model_version(NAME, new).tags
    print(json.dumps({k: v for k, v in tags.items() if k.startswith(("canaryflow.", "team."))},
                     indent=1))  # fmt: skip
    assert tags["team.trainer"] == "user-sft"
    assert tags["canaryflow.parent_version"] == champion
    assert tags["canaryflow.trigger"] == f"drift:{retrain['parameters']['event_id']}"
    assert tags["canaryflow.decision"] == "promoted"
    assert tags["canaryflow.image"]
    assert tags["canaryflow.data_digest"]
    # ... and the MLflow UI shows that lineage on the version's page, as a person opens it
    mlflow_ui = re.search(r"(http://[^\s)\]]+?)/#/experiments/", released)
    assert mlflow_ui is not None, "the record links no MLflow run"
    with chromium() as browser:
        page = look(browser, f"{mlflow_ui[1]}/#/models/{NAME}/versions/{new}",
                    "canaryflow.parent_version", tmp_path / "mlflow-lineage.png")  # fmt: skip
    for shown in ("canaryflow.data_digest", "canaryflow.trigger", "canaryflow.decision",
                  tags["canaryflow.data_digest"][:16], "user-sft"):  # fmt: skip
        assert shown in page.text, f"{page.url} does not show {shown}"

    # The same chain with a trainer that cannot run: the retrain fails naming it, and
    # nothing is registered, released or changed.
    spec["trainer"] = {**spec["trainer"], "command": [*user, "--fail", "no GPU on this pool"]}
    stack.api.patch(f"/deployments/{dep['id']}", {"parameters": {"spec": spec}})
    failed_at = time.time()
    broken = stack.api.run_deployment("retrain/retrain", {"drift": {"model": NAME}})
    final = stack.api.wait(broken, 600)
    assert final["state_type"] == "FAILED", final["state_name"]
    assert "no GPU on this pool" in (final.get("state") or {}).get("message", ""), final
    time.sleep(5)
    assert stack.api.runs_of(RELEASE, after=failed_at) == []
    assert serving_version(stack) == new
    versions = client.search_model_versions(f"name = '{NAME}'")
    assert max(int(v.version) for v in versions) == int(new)


def test_6_no_planted_secret_anywhere(stack: Stack, serving_image: BuiltImage) -> None:
    started = time.monotonic()
    key = stack.target.api_key_file.read_text().strip()
    scan = SecretScan({"router API key": key, **stack.planted})
    target_dir = stack.target.config.resolved_state_dir()
    capture = stack.target.capture_dir

    def key_home(path: Path) -> bool:  # where the key legitimately lives (0600/0400 files)
        rel = path.relative_to(target_dir).parts if path.is_relative_to(target_dir) else ()
        return rel[:1] == ("secrets",) or (rel[:1] == ("slots",) and path.name == "api-key")

    control = SecretScan(scan.planted)  # the scanner does find the key where it is
    scan_tree(control, "key home", target_dir, skip=lambda p: not key_home(p))
    assert control.findings, "the scan does not find the key even in its own file"

    artifacts = scan_prefect(scan, stack.api)
    client = stack.target.client
    filters = {"label": f"{TARGET_LABEL}={stack.target.config.name}"}
    scan_containers(scan, client, filters)
    images = {serving_image.tag} | set(re.findall(r"canaryflow/serving:[\w.-]+",
                                                  json.dumps(artifacts)))  # fmt: skip
    images |= {c.labels[IMAGE_LABEL] for c in client.containers.list(all=True, filters=filters)}
    scan_images(scan, client, images)
    scan_mlflow(scan, stack.mlflow_uri)
    parts = {
        "capture files": capture,
        "haproxy files": target_dir / "haproxy",
        "prometheus files": target_dir / "prometheus",
        "service logs": stack.state / "log",
    }
    for place, root in parts.items():
        scan_tree(scan, place, root, skip=key_home)
    scan_tree(scan, "other state files", stack.state, skip=lambda p: key_home(p) or any(
        p.is_relative_to(root) for root in parts.values()))  # fmt: skip
    print(f"{len(images)} image(s): {sorted(images)}")
    summarize(f"{scan.summary()}\n  ({len(images)} image(s), {time.monotonic() - started:.0f} s)")
    assert scan.counts["image layers"] + scan.counts["image save stream"] > 0
    for place in (
        "container env",
        "container logs",
        "capture files",
        "prefect logs",
        "prefect artifacts",
        "mlflow runs",
        "service logs",
    ):
        assert scan.counts[place] > 0, f"nothing scanned in {place}"
    assert not scan.findings, scan.summary()
