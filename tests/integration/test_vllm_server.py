"""A real vLLM server started by the launcher (serving venv) on the trained demo model."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving.settings import ServingSettings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVING_PYTHON = Path(
    os.environ.get("CANARYFLOW_SERVING_PYTHON", ROOT / ".venv-serving" / "bin" / "python")
)
API_KEY = f"cf-it-{uuid.uuid4().hex}"


@dataclass
class Server:
    url: str
    capture_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}", **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(server: Server, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            pytest.fail(
                f"launcher exited {server.proc.returncode}:\n{server.log.read_text()[-3000:]}"
            )
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"server not ready in {timeout_s} s:\n{server.log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the launcher's process group (launcher + vLLM), SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def vllm_server(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not SERVING_PYTHON.exists():
        pytest.fail(f"{SERVING_PYTHON} missing: run `make setup`")
    work = tmp_path_factory.mktemp("vllm")
    settings = ServingSettings(
        model_dir=trained_model, host="127.0.0.1", port=free_port(), api_key=API_KEY,
        variant="canary", model_version="7", capture_dir=work / "capture",
        ready_file=work / "ready", cpu_kvcache_space_gib=1, dtype="float32",
    )  # fmt: skip
    env = {**os.environ, **settings.to_env(include_secrets=True), "PYTHONPATH": str(ROOT)}
    log = work / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SERVING_PYTHON), "-m", "serving.launcher"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{settings.port}", work / "capture", log, proc)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(proc)
    assert API_KEY not in log.read_text(errors="replace"), "the API key leaked into the log"


def chat(server: Server, prompt: str, **headers: str) -> httpx.Response:
    body = {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 8,
    }
    return httpx.post(
        f"{server.url}/v1/chat/completions",
        json=body,
        headers=server.headers(**headers),
        timeout=60,
    )


def test_golden_prompts_get_correct_answers(vllm_server: Server, trained_model: Path) -> None:
    lines = (trained_model / "golden.jsonl").read_text().splitlines()[:8]
    examples = [json.loads(line) for line in lines]
    answers = []
    for ex in examples:
        resp = chat(vllm_server, ex["prompt"])
        assert resp.status_code == 200, resp.text
        answers.append(resp.json()["choices"][0]["message"]["content"].strip())
    correct = sum(a == ex["answer"] for a, ex in zip(answers, examples, strict=True))
    assert correct >= len(examples) - 1, list(zip(answers, examples, strict=True))


def test_responses_carry_request_id_variant_and_version(vllm_server: Server) -> None:
    resp = chat(vllm_server, "1+2", **{"X-Request-ID": "it-abc"})
    assert resp.headers["x-request-id"] == "it-abc"
    assert resp.headers["x-canaryflow-variant"] == "canary"
    assert resp.headers["x-canaryflow-model-version"] == "7"
    health = httpx.get(f"{vllm_server.url}/health", timeout=5)
    assert health.status_code == 200
    assert health.headers["x-canaryflow-variant"] == "canary"


def test_v1_needs_the_key_and_health_does_not(vllm_server: Server) -> None:
    assert httpx.get(f"{vllm_server.url}/v1/models", timeout=5).status_code == 401
    assert httpx.get(f"{vllm_server.url}/metrics", timeout=5).status_code == 200


def test_each_exchange_lands_in_the_capture_file(vllm_server: Server) -> None:
    request_id = f"it-{uuid.uuid4().hex}"
    answer = chat(vllm_server, "20+22", **{"X-Request-ID": request_id}).json()
    deadline = time.monotonic() + 10
    record = None
    while record is None and time.monotonic() < deadline:
        rows = [json.loads(x) for p in vllm_server.capture_dir.glob("*.jsonl")
                for x in p.read_text().splitlines()]  # fmt: skip
        record = next((r for r in rows if r["request_id"] == request_id), None)
        time.sleep(0.2)
    assert record is not None
    assert record["prompt"] == "20+22"
    assert record["variant"] == "canary"
    assert record["completion"] == answer["choices"][0]["message"]["content"]
    assert record["completion_tokens"] == answer["usage"]["completion_tokens"]
    metrics = httpx.get(f"{vllm_server.url}/metrics", timeout=5).text
    assert 'canaryflow_capture_records_total{outcome="written"}' in metrics
