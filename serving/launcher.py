"""Start vLLM's OpenAI server from `ServingSettings`, warm it up, then report ready.

    python -m serving.launcher          # settings from CANARYFLOW_SERVING_* variables

Steps: check the model directory, resolve the API key (env or mounted file; it reaches vLLM
as VLLM_API_KEY, never as a flag, so it shows in no log and no `ps`), start
`python -m vllm.entrypoints.openai.api_server` as a child, wait until /v1/models answers,
send one chat completion (warmup), then create the ready file: from then on /health answers
200 (the middleware gates it). SIGTERM/SIGINT are forwarded to vLLM; the exit code is vLLM's.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from serving.errors import ServerStartError, ServingError, ServingSettingsError, WarmupError
from serving.middleware import WARMUP_HEADER
from serving.settings import ENV_PREFIX, ServingSettings

log = logging.getLogger("canaryflow.launcher")
REQUIRED_MODEL_FILES = ("config.json", "tokenizer_config.json")
# vLLM's engine<->worker queues live in /dev/shm: 10 x 16 MiB + 10 x 24 MiB (vLLM 0.32).
MIN_SHM_BYTES = 512 << 20


def vllm_command(settings: ServingSettings, python: str = sys.executable) -> list[str]:
    """The vLLM api_server command line (no secrets in it)."""
    return [python, "-m", "vllm.entrypoints.openai.api_server", *settings.vllm_args()]


def child_env(
    settings: ServingSettings, api_key: str | None, base: Mapping[str, str]
) -> dict[str, str]:
    """Environment of the vLLM process: ours, the settings rendered, the key as VLLM_API_KEY."""
    env = {k: v for k, v in base.items() if k not in (ENV_PREFIX + "API_KEY", "VLLM_API_KEY")}
    env.update(settings.to_env())
    env.update(settings.vllm_env())
    if api_key is not None:
        env["VLLM_API_KEY"] = api_key
    return env


def check_model_dir(model_dir: Path) -> None:
    missing = [f for f in REQUIRED_MODEL_FILES if not (model_dir / f).is_file()]
    if missing:
        raise ServingSettingsError(
            f"model directory {model_dir} lacks {', '.join(missing)}: bake the model into the "
            f"image or mount it read-only there ({ENV_PREFIX}MODEL_DIR)"
        )


def check_shm(shm: Path = Path("/dev/shm"), minimum: int = MIN_SHM_BYTES) -> None:  # noqa: S108
    """Fail fast (not after vLLM's 20 s of startup) when /dev/shm is Docker's 64 MiB default."""
    if shm.is_dir() and (free := shutil.disk_usage(shm).free) < minimum:
        raise ServingSettingsError(
            f"{shm} has {free >> 20} MiB free; vLLM needs about {minimum >> 20} MiB there: run "
            "the container with --shm-size 1g (Kubernetes: an emptyDir of medium Memory)"
        )


def with_ready_file(settings: ServingSettings) -> ServingSettings:
    """Settings with a ready file path (default under the temp dir) that does not exist yet."""
    path = settings.ready_file or Path(tempfile.gettempdir()) / f"canaryflow-ready-{settings.port}"
    path.unlink(missing_ok=True)  # a restarted container keeps /tmp: never start "ready"
    return settings.model_copy(update={"ready_file": path})


def _request(
    url: str, api_key: str | None, body: dict[str, Any] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", WARMUP_HEADER: "1"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def wait_serving(
    proc: subprocess.Popen[bytes], base_url: str, api_key: str | None, timeout_s: float
) -> float:
    """Seconds until /v1/models answers 200; raises if vLLM exits or the time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if proc.poll() is not None:
            raise ServerStartError(
                f"vLLM exited with code {proc.returncode} during startup; its log is above"
            )
        try:
            status, body = _request(f"{base_url}/v1/models", api_key, timeout=5)
        except OSError:
            status, body = 0, b""
        if status == 200:
            return time.monotonic() - start
        if status in (401, 403):
            raise ServerStartError(
                f"vLLM refused the launcher's API key ({status}): {body[:200]!r}"
            )
        time.sleep(1)
    raise ServerStartError(
        f"vLLM did not answer on {base_url} within {timeout_s:.0f} s; "
        f"raise {ENV_PREFIX}STARTUP_TIMEOUT_S or check the log above"
    )


def warmup(settings: ServingSettings, base_url: str, api_key: str | None) -> float:
    """Seconds one chat completion took; raises WarmupError unless it answered 200."""
    body = {
        "model": settings.served_model_name,
        "messages": [{"role": "user", "content": settings.warmup_prompt}],
        "max_tokens": settings.warmup_max_tokens,
        "temperature": 0,
    }
    start = time.monotonic()
    try:
        status, payload = _request(f"{base_url}/v1/chat/completions", api_key, body, timeout=120)
    except OSError as exc:
        raise WarmupError(f"warmup request failed: {exc}") from exc
    if status != 200:
        raise WarmupError(
            f"warmup completion answered {status}: {payload[:500]!r}; does the model have a "
            "chat template and does max_model_len fit the prompt?"
        )
    return time.monotonic() - start


def stop(proc: subprocess.Popen[bytes], grace_s: float = 30) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait()


def run(settings: ServingSettings, python: str = sys.executable) -> int:
    """Start, warm up, mark ready, then wait for vLLM; returns its exit code."""
    check_model_dir(settings.model_dir)
    check_shm()
    api_key = settings.resolve_api_key()
    settings = with_ready_file(settings)
    assert settings.ready_file is not None
    cmd = vllm_command(settings, python)
    log.info("starting: %s", " ".join(cmd))
    log.info("api key: %s", _key_source(settings, api_key))
    proc = subprocess.Popen(cmd, env=child_env(settings, api_key, os.environ))
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    base_url = f"http://127.0.0.1:{settings.port}"
    try:
        up = wait_serving(proc, base_url, api_key, settings.startup_timeout_s)
        log.info("vLLM answers after %.1f s", up)
        if settings.warmup:
            log.info("warmup completion took %.2f s", warmup(settings, base_url, api_key))
        settings.ready_file.touch()
        log.info("ready: /health now answers 200 (%s)", settings.ready_file)
    except ServingError:
        stop(proc)
        if stopping:
            return proc.returncode
        raise
    finally:
        if proc.poll() is not None:
            settings.ready_file.unlink(missing_ok=True)
    code = proc.wait()
    settings.ready_file.unlink(missing_ok=True)
    return code


def _key_source(settings: ServingSettings, api_key: str | None) -> str:
    if api_key is None:
        return "none (/v1 is open: allow_no_api_key is set)"
    if settings.api_key is not None and settings.api_key.get_secret_value():
        return f"from {ENV_PREFIX}API_KEY"
    return f"from file {settings.api_key_file}"


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s canaryflow-launcher: %(message)s")
    try:
        settings = ServingSettings()
    except ValidationError as exc:
        log.error("invalid %s* settings:\n%s", ENV_PREFIX, exc)
        return 2
    try:
        return run(settings)
    except ServingError as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
