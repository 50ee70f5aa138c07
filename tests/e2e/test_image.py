"""The cpu serving image, built and run for real: smoke checks, OpenAI SDK, no key leaks."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from openai import OpenAI

from infra.image.build import LABEL, BuiltImage, build_image
from infra.image.smoke import (
    CAPTURE_PATH,
    ServerHandle,
    run_container,
    smoke_checks,
    smoke_test,
)
from tests.fixtures.fault_report import summarize
from validation import manifest

pytestmark = pytest.mark.e2e
API_KEY = f"cf-e2e-{uuid.uuid4().hex}"


def golden(model_dir: Path, n: int = 5) -> list[dict[str, str]]:
    lines = (model_dir / "golden.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]


def test_unchanged_rebuild_is_a_noop(serving_image: BuiltImage, trained_model: Path) -> None:
    start = time.monotonic()
    again = build_image(trained_model, progress=print)
    print(f"no-op rebuild: {time.monotonic() - start:.2f} s")
    assert (again.built, again.tag) == (False, serving_image.tag)
    assert serving_image.tag.endswith(serving_image.digest[:16])


def test_image_is_labelled_non_root_and_health_checked(
    serving_image: BuiltImage, docker_client: docker.DockerClient, trained_model: Path
) -> None:
    config = docker_client.images.get(serving_image.tag).attrs["Config"]
    assert config["User"] == "10001:10001"
    assert "serving.healthcheck" in " ".join(config["Healthcheck"]["Test"])
    model_sum = manifest.digest(manifest.compute(trained_model))
    assert config["Labels"][f"{LABEL}.model.sha256"] == model_sum
    assert config["Labels"][f"{LABEL}.digest"] == serving_image.digest
    print(f"image size: {serving_image.size_bytes / 1e9:.2f} GB")


class TestRunningContainer:
    """One container for these checks (a vLLM start is the slow part)."""

    @pytest.fixture(scope="class")
    def server(
        self,
        serving_image: BuiltImage,
        docker_client: docker.DockerClient,
        e2e_labels: dict[str, str],
    ) -> Iterator[ServerHandle]:
        with run_container(
            serving_image.tag, client=docker_client, api_key=API_KEY, labels=e2e_labels
        ) as server:
            print(f"start to healthy: {server.start_to_healthy_s:.1f} s, user {server.user}")
            yield server

    def test_smoke_checks_pass(self, server: ServerHandle) -> None:
        checks = smoke_checks(server)
        print(checks)
        assert set(checks) == {"models", "completion", "no_key", "malformed", "capture"}

    def test_openai_sdk_works_unchanged(self, server: ServerHandle, trained_model: Path) -> None:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
        assert server.served_model_name in [m.id for m in client.models.list()]
        examples = golden(trained_model)
        answers = [self._ask(client, server, ex["prompt"]) for ex in examples]
        correct = sum(a.strip() == ex["answer"] for a, ex in zip(answers, examples, strict=True))
        assert correct >= len(examples) - 1, list(zip(answers, examples, strict=True))
        stream = client.chat.completions.create(
            model=server.served_model_name, stream=True, max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": examples[0]["prompt"]}],
        )  # fmt: skip
        streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert streamed == answers[0]

    def test_streamed_completion_is_captured(self, server: ServerHandle) -> None:
        client = OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
        request_id = f"stream-{uuid.uuid4().hex}"
        with client.chat.completions.with_streaming_response.create(
            model=server.served_model_name, stream=True, max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": "12+35"}],
            extra_headers={"X-Request-ID": request_id},
        ) as raw:  # fmt: skip
            assert raw.headers["x-request-id"] == request_id
            assert raw.headers["x-canaryflow-variant"] == "smoke"
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        record = self._record(server, request_id)
        assert record["stream"] is True
        assert record["completion"] == text
        assert record["prompt"] == "12+35"
        assert record["status"] == 200

    def test_api_key_is_in_no_layer_env_log_or_capture(
        self, server: ServerHandle, docker_client: docker.DockerClient, serving_image: BuiltImage
    ) -> None:
        image = docker_client.images.get(serving_image.tag)
        history = json.dumps(image.history())
        server.container.reload()
        places = {
            "image history": history,
            "image config": json.dumps(image.attrs["Config"]),
            "container config": json.dumps(server.container.attrs["Config"]),
            "container log": server.container.logs().decode(errors="replace"),
            "capture": "".join(p.read_text() for p in server.capture_dir.glob("*.jsonl")),
        }
        assert places["capture"], "capture is empty: the other tests should have written to it"
        assert [where for where, text in places.items() if API_KEY in text] == []

    @staticmethod
    def _ask(client: OpenAI, server: ServerHandle, prompt: str) -> str:
        resp = client.chat.completions.create(
            model=server.served_model_name, max_tokens=8, temperature=0,
            messages=[{"role": "user", "content": prompt}],
        )  # fmt: skip
        return resp.choices[0].message.content or ""

    @staticmethod
    def _record(server: ServerHandle, request_id: str) -> dict[str, object]:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            for path in server.capture_dir.glob("*.jsonl"):
                for line in path.read_text().splitlines():
                    record = json.loads(line)
                    if record["request_id"] == request_id:
                        return dict(record)
            time.sleep(0.25)
        raise AssertionError(f"no capture record for {request_id}")


def test_mounted_model_image_passes_the_smoke_test(
    trained_model: Path, docker_client: docker.DockerClient, e2e_labels: dict[str, str]
) -> None:
    built = build_image(trained_model, model_mode="mounted", progress=print)
    assert built.model_checksum == "mounted"
    report = smoke_test(built.tag, client=docker_client, model_dir=trained_model, labels=e2e_labels)
    print(report)
    assert report.user == "10001:10001"


# Runs as the image user inside the container: fills the capture filesystem to the last byte.
FILL_CAPTURE = f"""
import errno, os
written, err = 0, None
with open("{CAPTURE_PATH}/fill", "wb", buffering=0) as f:
    for size in (65536, 4096, 512, 1):
        while True:
            try:
                written += f.write(bytes(size))
            except OSError as exc:
                err = errno.errorcode.get(exc.errno, exc.errno)
                break
st = os.statvfs("{CAPTURE_PATH}")
print(written, st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, err)
"""
CAPTURE_METRIC = re.compile(r'^canaryflow_capture_records_total\{outcome="(\w+)"\} (\S+)$', re.M)


def capture_counts(http: httpx.Client) -> dict[str, float]:
    """`canaryflow_capture_records_total` by outcome, from /metrics (no key: it is open)."""
    resp = http.get("/metrics")
    assert resp.status_code == 200, resp.text[:300]
    return {outcome: float(value) for outcome, value in CAPTURE_METRIC.findall(resp.text)}


def test_full_capture_disk_leaves_serving_unaffected_and_counts_drops(
    serving_image: BuiltImage, docker_client: docker.DockerClient, e2e_labels: dict[str, str]
) -> None:
    """Issue #9: capture on a full filesystem: every request answers, the drops are counted."""
    with run_container(
        serving_image.tag, client=docker_client, api_key=API_KEY, labels=e2e_labels,
        capture_tmpfs="size=64k",
    ) as server, httpx.Client(base_url=server.base_url, timeout=120) as http:  # fmt: skip
        container = server.container
        started_at = container.attrs["State"]["StartedAt"]
        code, out = container.exec_run(
            ["/opt/venv/bin/python", "-c", FILL_CAPTURE], user=server.user
        )
        assert code == 0, out.decode(errors="replace")
        written, free, size, err = out.decode().split()
        print(f"injected: {CAPTURE_PATH} tmpfs of {size} B filled with {written} B ({err}), "
              f"{free} B free")  # fmt: skip
        assert int(free) == 0
        before = capture_counts(http)
        print(f"capture counters before: {before}")
        assert "dropped_disk_full" in before, f"no disk_full counter on /metrics: {before}"

        auth = {"Authorization": f"Bearer {API_KEY}"}
        seen: list[tuple[str, int, str]] = []
        for i in range(10):
            prompt = f"{i}+{i + 1}"
            body = {
                "model": server.served_model_name, "max_tokens": 8, "temperature": 0,
                "messages": [{"role": "user", "content": prompt}], "stream": i % 2 == 1,
            }  # fmt: skip
            if not body["stream"]:
                resp = http.post("/v1/chat/completions", json=body, headers=auth)
                ok = resp.status_code == 200
                text = (resp.json()["choices"][0]["message"]["content"] or "") if ok else resp.text
                seen.append(("chat", resp.status_code, text))
                continue
            with http.stream("POST", "/v1/chat/completions", json=body, headers=auth) as resp:
                events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
            chunks = [json.loads(e)["choices"] for e in events if e != "[DONE]"]
            text = "".join(c[0]["delta"].get("content") or "" for c in chunks if c)
            seen.append(("stream", resp.status_code, text))
        print(f"requests (kind, status, answer): {seen}")

        deadline = time.monotonic() + 15
        after = capture_counts(http)
        while after["dropped_disk_full"] - before["dropped_disk_full"] < len(seen):
            if time.monotonic() > deadline:
                break
            time.sleep(0.25)
            after = capture_counts(http)
        health = http.get("/health").status_code
        container.reload()
        state = container.attrs["State"]
        log_lines = container.logs().decode(errors="replace").splitlines()
        print(f"capture counters after: {after}")
        summarize(
            f"capture disk full: {len(seen)} requests, statuses "
            f"{sorted({status for _, status, _ in seen})}, dropped_disk_full "
            f"{after['dropped_disk_full'] - before['dropped_disk_full']:.0f}"
        )
        print(f"/health {health}; container {state['Status']}, health "
              f"{state['Health']['Status']}, restarts {container.attrs['RestartCount']}, "
              f"started {state['StartedAt']} (before: {started_at})")  # fmt: skip
        print(f"capture log lines: {[x for x in log_lines if 'capture:' in x]}")

        assert [(kind, status) for kind, status, _ in seen if status != 200] == []
        assert [kind for kind, _, text in seen if not text.strip()] == []
        assert after["dropped_disk_full"] - before["dropped_disk_full"] >= len(seen)
        assert after["written"] == before["written"]
        assert health == 200
        assert (state["Status"], state["Health"]["Status"]) == ("running", "healthy")
        assert (container.attrs["RestartCount"], state["StartedAt"]) == (0, started_at)
        assert list(server.capture_dir.iterdir()) == []
        assert [x for x in log_lines if "capture:" in x and "disk_full" in x], log_lines[-20:]
