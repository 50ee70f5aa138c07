"""Client-side TTFT / ITL of the paired window vs vLLM's own histograms, on one real server.

    flock /tmp/canaryflow-e2e.lock .venv/bin/python -m bench.paired_crosscheck [PAIRS]

Starts the serving launcher (the serving venv's vLLM) on the trained demo model when the
test cache holds it, else on the untrained demo-shaped one (whose random tokens mostly
decode to no text: the client then sees few content chunks, and says how many),
sends PAIRS pairs of the paired window (both halves to the same server: this measures the
measurement, not two variants), and compares the means over exactly those requests:
client TTFT (send -> first content chunk) with `vllm:time_to_first_token_seconds`, client
inter-chunk gaps with `vllm:inter_token_latency_seconds` (sum/count deltas of /metrics
scraped before and after). Prints one JSON object. Not part of `make bench`'s table.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from infra.demo_model.train import TrainConfig
from infra.load.paired import PairedSettings, Row, run_paired
from infra.load.records import read_records
from serving.settings import ServingSettings
from tests.fixtures.models import CACHE, _key, untrained

ROOT = Path(__file__).resolve().parents[1]
SERVING_PYTHON = ROOT / ".venv-serving" / "bin" / "python"
KEY = "cf-bench-crosscheck"
HISTOGRAMS = {"ttft": "vllm:time_to_first_token_seconds", "itl": "vllm:inter_token_latency_seconds"}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sums(url: str) -> dict[str, tuple[float, float]]:
    """(sum, count) of each histogram, over all label sets."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out = {}
    for key, name in HISTOGRAMS.items():
        parts = []
        for suffix in ("_sum", "_count"):
            pattern = re.compile(rf"^{re.escape(name + suffix)}(?:{{[^}}]*}})? (\S+)$", re.M)
            parts.append(sum(float(v) for v in pattern.findall(text)))
        out[key] = (parts[0], parts[1])
    return out


def main(pairs: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="cf-crosscheck-"))
    trained = CACHE / f"trained-{_key(TrainConfig())}"
    model = trained if (trained / "model.safetensors").exists() else untrained(work / "model")
    settings = ServingSettings(
        model_dir=model, host="127.0.0.1", port=_port(), api_key=KEY, variant="stable",
        model_version="1", capture_dir=work / "capture", ready_file=work / "ready",
        cpu_kvcache_space_gib=1, dtype="float32",
    )  # fmt: skip
    env = {**os.environ, **settings.to_env(include_secrets=True), "PYTHONPATH": str(ROOT)}
    url = f"http://127.0.0.1:{settings.port}"
    with (work / "server.log").open("wb") as log:
        argv = [str(SERVING_PYTHON), "-m", "serving.launcher"]
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # a busy 2-core host: minutes
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start; log {work / 'server.log'}")
            time.sleep(1)
        rows: list[Row] = [
            (f"r{i}", ({"role": "user", "content": f"{i}+{i}"},)) for i in range(pairs)
        ]
        time.sleep(2)  # warmup requests of the launcher land in the histograms first
        before = _sums(url)
        window = PairedSettings(pairs=pairs, max_tokens=16)
        result = run_paired({"stable": url, "canary": url}, KEY, "tiny-chat", rows,
                            work / "paired.jsonl", window)  # fmt: skip
        after = _sums(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    records = [r for r in read_records(result.records) if r["ok"]]
    ttft = [float(t) for r in records if (t := r["ttft_ms"]) is not None]
    gaps = [g for r in records for g in (r.get("itl_ms") or [])]
    server = {k: (after[k][0] - before[k][0]) * 1000 / max(1.0, after[k][1] - before[k][1])
              for k in HISTOGRAMS}  # fmt: skip
    return {
        "model": str(model), "pairs": result.pairs, "ok_requests": len(records),
        "requests_with_content": len(ttft),
        "client_ttft_mean_ms": round(sum(ttft) / len(ttft), 2) if ttft else None,
        "server_ttft_mean_ms": round(server["ttft"], 2),
        "client_itl_mean_ms": round(sum(gaps) / len(gaps), 2) if gaps else None,
        "server_itl_mean_ms": round(server["itl"], 2),
        "client_latency_mean_ms": round(sum(r["latency_ms"] for r in records) / len(records), 2),
        "server_observations": {k: after[k][1] - before[k][1] for k in HISTOGRAMS},
        "client_gaps": len(gaps),
    }  # fmt: skip


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50), indent=2))
