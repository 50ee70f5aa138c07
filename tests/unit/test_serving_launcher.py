"""Settings → vLLM flags and environment; key handling; waiting and warmup over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from serving import launcher
from serving.errors import ServerStartError, ServingSettingsError, WarmupError
from serving.settings import MIDDLEWARE_IMPORT_PATH, ServingSettings


def make(**kw: Any) -> ServingSettings:
    return ServingSettings(**{"model_dir": Path("/m"), **kw})


def test_flags_carry_every_typed_setting_and_the_middleware() -> None:
    s = make(served_model_name="tiny", max_model_len=64, dtype="float32", port=8123,
             gpu_memory_utilization=0.5, extra_args=["--enforce-eager"])  # fmt: skip
    cmd = launcher.vllm_command(s, python="/py")
    assert cmd[:3] == ["/py", "-m", "vllm.entrypoints.openai.api_server"]
    flags = dict(zip(cmd[3::2], cmd[4::2], strict=False))
    assert flags["--model"] == "/m"
    assert flags["--served-model-name"] == "tiny"
    assert flags["--max-model-len"] == "64"
    assert flags["--dtype"] == "float32"
    assert flags["--port"] == "8123"
    assert flags["--gpu-memory-utilization"] == "0.5"
    assert flags["--middleware"] == MIDDLEWARE_IMPORT_PATH
    assert cmd[-1] == "--enforce-eager"


def test_the_key_travels_only_as_vllm_api_key() -> None:
    s = make(api_key="s3cret-key")
    base = {"CANARYFLOW_SERVING_API_KEY": "s3cret-key", "PATH": "/bin"}
    env = launcher.child_env(s, s.resolve_api_key(), base)
    assert env["VLLM_API_KEY"] == "s3cret-key"
    assert "CANARYFLOW_SERVING_API_KEY" not in env
    assert "s3cret-key" not in " ".join(launcher.vllm_command(s))
    assert "CANARYFLOW_SERVING_API_KEY" not in s.to_env()


def test_cpu_environment_binds_threads_and_sizes_the_kv_cache() -> None:
    env = make(cpu_threads_bind="0-1", cpu_kvcache_space_gib=1).vllm_env()
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0-1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert env["HF_HUB_OFFLINE"] == "1"


def test_eager_mode_also_disables_vllms_op_level_torch_compile() -> None:
    """Without a C++ compiler, a prompt-logprobs request would compile one and kill the engine."""
    assert make(enforce_eager=True).vllm_env()["TORCH_COMPILE_DISABLE"] == "1"
    assert "TORCH_COMPILE_DISABLE" not in make(enforce_eager=False).vllm_env()


def test_key_comes_from_env_before_file_and_file_before_nothing(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-file\n")
    assert make(api_key="from-env", api_key_file=key_file).resolve_api_key() == "from-env"
    assert make(api_key_file=key_file).resolve_api_key() == "from-file"
    assert make(allow_no_api_key=True).resolve_api_key() is None


def test_no_key_is_refused_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(ServingSettingsError, match="does not exist"):
        make(api_key_file=tmp_path / "missing").resolve_api_key()
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(ServingSettingsError, match="empty"):
        make(api_key_file=empty).resolve_api_key()


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANARYFLOW_SERVING_VARIANT", "canary")
    monkeypatch.setenv("CANARYFLOW_SERVING_REDACT_PATTERNS", '["x+"]')
    monkeypatch.setenv("CANARYFLOW_SERVING_MAX_MODEL_LEN", "64")
    s = ServingSettings()
    assert (s.variant, s.redact_patterns, s.max_model_len) == ("canary", ["x+"], 64)


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    original = make(variant="canary", redact_patterns=["a+"], capture_dir=Path("/c"), warmup=False)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert ServingSettings() == original


def test_bad_settings_are_refused_early() -> None:
    with pytest.raises(ValidationError, match="not a valid regex"):
        make(redact_patterns=["("])
    with pytest.raises(ValidationError):
        make(variant="Canary Bad")


def test_model_dir_without_config_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(ServingSettingsError, match=r"lacks config\.json"):
        launcher.check_model_dir(tmp_path)


def test_a_small_dev_shm_is_refused_before_vllm_starts(tmp_path: Path) -> None:
    with pytest.raises(ServingSettingsError, match="--shm-size"):
        launcher.check_shm(tmp_path, minimum=1 << 60)
    launcher.check_shm(tmp_path, minimum=1)
    launcher.check_shm(tmp_path / "absent")  # no /dev/shm at all: nothing to check


def test_a_stale_ready_file_is_removed(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.touch()
    s = launcher.with_ready_file(make(ready_file=ready))
    assert s.ready_file == ready
    assert not ready.exists()


class FakeVllm(BaseHTTPRequestHandler):
    """Answers /v1/models and /v1/chat/completions like vLLM (status set per test)."""

    chat_status = 200
    seen: list[dict[str, Any]] = []  # noqa: RUF012

    def do_GET(self) -> None:
        self._answer(200, {"data": [{"id": "tiny-chat"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeVllm.seen.append(
            {"headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
        )
        self._answer(self.chat_status, {"choices": [{"message": {"content": "2"}}]})

    def _answer(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_vllm() -> Iterator[str]:
    FakeVllm.chat_status, FakeVllm.seen = 200, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeVllm)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_wait_serving_returns_once_models_answers(fake_vllm: str) -> None:
    proc = sleeper()
    try:
        assert launcher.wait_serving(proc, fake_vllm, "k", timeout_s=10) < 10
    finally:
        proc.kill()


def test_wait_serving_names_an_exited_server() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    with pytest.raises(ServerStartError, match="exited with code 3"):
        launcher.wait_serving(proc, "http://127.0.0.1:9", None, timeout_s=5)


def test_warmup_sends_one_marked_chat_completion(fake_vllm: str) -> None:
    launcher.warmup(make(warmup_prompt="1+1"), fake_vllm, "k")
    (req,) = FakeVllm.seen
    assert req["body"]["messages"] == [{"role": "user", "content": "1+1"}]
    assert req["headers"]["authorization"] == "Bearer k"
    assert req["headers"]["x-canaryflow-warmup"] == "1"


def test_warmup_failure_is_a_named_error(fake_vllm: str) -> None:
    FakeVllm.chat_status = 500
    with pytest.raises(WarmupError, match="answered 500"):
        launcher.warmup(make(), fake_vllm, None)
