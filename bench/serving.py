"""vLLM (the serving image, one container) vs a plain transformers server (bench/hf_server.py).

    python -m bench --only serving [--quick]

Same demo model, same single core (the HF server is pinned with taskset to the cpuset of
the vLLM stable container), same client (bench/client.py, on the other core), same
request: a greedy chat completion of exactly 32 tokens (`ignore_eos`, so both generate the
same number of tokens whatever the model would answer). Closed loop at concurrency 1, 4
and 16; per repeat both servers run back to back, in alternating order. Reported:
completion tokens/s and p99 latency (median over repeats, min–max).
"""

from __future__ import annotations

from bench.client import Run, chat_body, closed_loop
from bench.common import Context, Row, num, other_cpus, pinned, spread, verdict
from bench.procs import child_server
from bench.stack import serving_image, vllm_stack
from tests.fixtures.docker_target import free_ports

NAME = "serving"
TOKENS = 32
CONCURRENCY = (1, 4, 16)
GOAL_RATIO = 3.0
METHOD = (
    "measured: vLLM serving-image container vs bench/hf_server.py (FastAPI + model.generate, "
    "no batching), both pinned to the same one core, client on the other; greedy chat "
    "completions of exactly 32 tokens (ignore_eos), closed loop at concurrency 1/4/16."
)


def run(ctx: Context) -> None:
    stack = vllm_stack(ctx)
    stack.ensure_stable()
    core = stack.cpuset("stable")
    model_dir, _ = serving_image()
    port = free_ports(1)[0]
    args = ["-m", "bench.hf_server", str(model_dir), "--port", str(port), "--threads", "1"]
    log = ctx.work / "hf_server.log"
    with child_server(args, port, cpus=core or None, log=log) as hf_url:
        urls = {"vllm": stack.direct("stable"), "transformers": hf_url}
        ctx.note(f"servers on cpuset {core or 'any'}; client on {other_cpus(core) or 'any'}")
        with pinned(other_cpus(core) if core else None):
            for conc in CONCURRENCY:
                runs = _measure(ctx, urls, stack.headers, conc)
                _report(ctx, conc, runs)


def _measure(
    ctx: Context, urls: dict[str, str], headers: dict[str, str], conc: int
) -> dict[str, list[Run]]:
    body = chat_body(TOKENS, ignore_eos=True)
    duration = ctx.pick(3.0, 6.0)
    runs: dict[str, list[Run]] = {name: [] for name in urls}
    for rep in range(ctx.repeats(3)):
        order = list(urls) if rep % 2 == 0 else list(reversed(urls))
        for name in order:
            closed_loop([urls[name]], body, headers, concurrency=conc, requests=2 * conc)  # warm
            runs[name].append(
                closed_loop(
                    [urls[name]], body, headers, concurrency=conc, duration_s=duration, seed=rep
                )
            )
            last = runs[name][-1]
            ctx.note(
                f"{name} c={conc} rep {rep + 1}: {last.tokens_per_s:.0f} tok/s, "
                f"p99 {last.p99_ms:.0f} ms, {len(last.calls)} calls, {last.failed} failed"
                + (f" ({last.first_error()})" if last.failed else "")
            )
    return runs


def _report(ctx: Context, conc: int, runs: dict[str, list[Run]]) -> None:
    vllm, hf = runs["vllm"], runs["transformers"]
    ratios = [
        v.tokens_per_s / h.tokens_per_s if h.tokens_per_s else float("nan")
        for v, h in zip(vllm, hf, strict=True)
    ]
    failed = sum(r.failed for r in vllm + hf)
    tokens_per_call = {round(c.tokens) for r in vllm + hf for c in r.ok_calls}
    goal = f"≥ {GOAL_RATIO:g}×" if conc == 16 else "—"
    met = verdict(min(ratios) >= GOAL_RATIO) if conc == 16 else "—"
    notes = f"{failed} failed; tokens/answer {sorted(tokens_per_call)}"
    ctx.emit(
        Row(
            NAME,
            f"tokens/s at concurrency {conc}",
            spread([r.tokens_per_s for r in vllm], "tok/s"),
            "transformers " + spread([r.tokens_per_s for r in hf], "tok/s"),
            spread(ratios, "×"),
            goal,
            met,
            notes,
        )
    )
    p99_ratio = [v.p99_ms / h.p99_ms for v, h in zip(vllm, hf, strict=True)]
    ctx.emit(
        Row(
            NAME,
            f"p99 latency at concurrency {conc}",
            spread([r.p99_ms for r in vllm], "ms"),
            "transformers " + spread([r.p99_ms for r in hf], "ms"),
            spread(p99_ratio, "×"),
            "—",
            "—",
            f"p50 vLLM {num(vllm[0].p50_ms)} ms vs {num(hf[0].p50_ms)} ms (rep 1)",
        )
    )
