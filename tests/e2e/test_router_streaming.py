"""Streaming through the router: SSE chunks arrive as the server sends them, not at the end.

The same streamed chat request goes to the server directly and through the Docker target's
HAProxy, alternating request by request (so load on this shared machine hits both alike);
each `data:` event is timed from the moment the request was sent. Before
`option http-no-delay` (infra/router/haproxy_config.py) HAProxy held a stream's chunks
until its end or a 200 ms cork timer: the first chunk through the router arrived with the
last.

- the stand-in server streams CHUNKS events GAP_S apart: every chunk (first and last alike)
  must arrive through the router within GAP_S / 2 of its direct arrival (medians);
- the real serving image (vLLM, the demo model, 48 tokens): the first event through the
  router must come well before its last, [DONE] (the stream is spread over the
  generation), and less than half the generation time after the direct first event
  (buffered, it came a whole generation later); medians over runs. The bounds are
  relative: no absolute timing.

The numbers go to pytest's terminal summary.

    PYTHONPATH=. DOCKER_HOST=unix:///run/canaryflow-docker.sock \
        .venv/bin/python -m pytest tests/e2e/test_router_streaming.py -m e2e -q
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from infra.image.build import BuiltImage
from infra.router.haproxy import DEFAULT_BINARY
from infra.targets.docker import DockerTarget
from tests.fixtures.docker_target import make_config, running_target, standin_image, variant
from tests.fixtures.fault_report import summarize

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not DEFAULT_BINARY.is_file(), reason="HAProxy not installed"),
]
CHAT = "/v1/chat/completions"
CHUNKS, GAP_S = 8, 0.05
PAIRS = 5  # streamed requests per side, alternating direct/router


def arrivals(http: httpx.Client, body: dict[str, Any]) -> list[float]:
    """Milliseconds from sending `body` to each `data:` event of its stream ([DONE] too)."""
    start = time.perf_counter()
    times: list[float] = []
    with http.stream("POST", CHAT, json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("data:"):
                times.append((time.perf_counter() - start) * 1000)
    return times


def measure(
    target: DockerTarget, body: dict[str, Any], pairs: int = PAIRS
) -> dict[str, list[list[float]]]:
    """Chunk arrival times per request, direct to the stable container and via the router."""
    key = Path(target.api_key_file).read_text().strip()
    headers = {"Authorization": f"Bearer {key}"}
    urls = {"direct": target.endpoints()["stable"].url, "router": target.router_url}
    clients = {
        side: httpx.Client(base_url=u, headers=headers, timeout=60) for side, u in urls.items()
    }
    out: dict[str, list[list[float]]] = {side: [] for side in urls}
    try:
        for http in clients.values():  # warm each path's connection
            arrivals(http, body)
        for i in range(pairs):
            order = ("direct", "router") if i % 2 == 0 else ("router", "direct")
            for side in order:
                out[side].append(arrivals(clients[side], body))
    finally:
        for http in clients.values():
            http.close()
    return out


def chunk_medians(runs: Sequence[Sequence[float]]) -> list[float]:
    """Median arrival of the k-th event over runs (runs cut to the shortest)."""
    n = min(len(r) for r in runs)
    return [statistics.median(r[k] for r in runs) for k in range(n)]


def first_and_last(runs: Sequence[Sequence[float]]) -> tuple[float, float]:
    """Medians over runs of the first event's and the last event's arrival."""
    return statistics.median(r[0] for r in runs), statistics.median(r[-1] for r in runs)


def report(
    label: str, times: dict[str, list[list[float]]], pairs: int = PAIRS
) -> dict[str, list[float]]:
    med = {side: chunk_medians(runs) for side, runs in times.items()}
    for side in ("direct", "router"):
        summarize(
            f"streaming, {label}, {side}: first chunk {med[side][0]:.1f} ms, last "
            f"{med[side][-1]:.1f} ms ({len(med[side])} events, median of {pairs})"
        )
    return med


def stream_body(max_tokens: int) -> dict[str, Any]:
    return {
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": "49+5"}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
    }


def test_router_passes_sse_chunks_as_the_server_sends_them(
    docker_client: docker.DockerClient, tmp_path: Path, e2e_labels: dict[str, str]
) -> None:
    image = standin_image(docker_client)
    config = make_config(tmp_path / "state", labels={"io.canaryflow.test": "1", **e2e_labels})
    with running_target(config, client=docker_client) as target:
        target.deploy(
            variant(
                image, "1", "r1",
                STANDIN_STREAM_CHUNKS=str(CHUNKS), STANDIN_STREAM_GAP_S=str(GAP_S),
            )
        )  # fmt: skip
        med = report(f"stand-in ({CHUNKS} chunks {GAP_S * 1000:.0f} ms apart)",
                     measure(target, stream_body(CHUNKS)))  # fmt: skip

    direct, router = med["direct"], med["router"]
    assert len(direct) == len(router) == CHUNKS + 2  # content events, finish event, [DONE]
    assert direct[-2] - direct[0] >= CHUNKS * GAP_S * 1000 * 0.9  # the server did spread them
    lag = [r - d for r, d in zip(router, direct, strict=True)]
    assert max(lag) < GAP_S * 1000 / 2, f"router minus direct per chunk (ms): {lag}"


# Below this the direct stream is too short to tell a buffered stream from timing jitter: the
# tiny-chat model (64-token context) generates its 48 tokens in 6-21 ms on an idle fast core
# (measured 2026-12-04), ~60-90 ms on a slower one (#15). The stand-in test above proves the
# router's pass-through with chunks 100s of ms apart; this one adds the real server path.
SPREAD_MS = 40.0


def test_vllm_stream_through_the_router_is_spread_over_the_generation(
    docker_client: docker.DockerClient,
    tmp_path: Path,
    e2e_labels: dict[str, str],
    serving_image: BuiltImage,
) -> None:
    config = make_config(
        tmp_path / "state", ready_timeout_s=900, labels={"io.canaryflow.test": "1", **e2e_labels}
    )
    with running_target(config, client=docker_client) as target:
        target.deploy(variant(serving_image.tag, "1", "r1"))
        # vLLM merges tokens into fewer events when its API process falls behind (a busy
        # machine), so runs differ in their number of events: compare each run's first event
        # and its last ([DONE]), not the k-th event across runs. When even the direct stream
        # was too short to compare the router with (SPREAD_MS), measure again, up to 3 rounds.
        for _ in range(3):
            times = measure(target, stream_body(48), pairs=9)
            span = {side: first_and_last(runs) for side, runs in times.items()}
            if span["direct"][1] - span["direct"][0] >= SPREAD_MS:
                break
    for side, (first, last) in span.items():
        summarize(f"streaming, vLLM (48 tokens), {side}: first event {first:.1f} ms, "
                  f"[DONE] {last:.1f} ms (medians of 9)")  # fmt: skip
    (d_first, d_last), (r_first, r_last) = span["direct"], span["router"]
    generation = d_last - d_first
    if generation < SPREAD_MS:
        pytest.skip(
            f"vLLM's own stream spanned {generation:.1f} ms (< {SPREAD_MS} ms) in "
            "3 rounds: too short to judge the router; the stand-in test covers it"
        )
    assert r_last - r_first >= generation / 2, "through the router the chunks came bunched"
    assert r_first - d_first <= generation / 2, "the first chunk came late through the router"
