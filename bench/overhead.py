"""Overhead: the same fixed-latency simulator called directly, through Switchboard, through
LiteLLM's proxy (all loaded by wrk from its own process) and through LiteLLM's Router in-process.
Added latency = the target's percentile minus the direct call's percentile at the same
concurrency. Each run also charges the CPU the serving process tree spent per request, net of what the tree
burns idle (measured for 3 s before the runs)."""
from __future__ import annotations

import time
from typing import Mapping

from bench.loadgen import LoadResult, run_wrk
from bench.sysinfo import cpu_delta, loadavg, tree_cpu

PROMPT = [{"role": "user", "content": "Say hello in five words."}]


def chat_body(model: str = "gpt-4o", **extra) -> dict:
    return {"model": model, "messages": PROMPT, "max_tokens": 16, **extra}


def measure(target: str, url: str, body: dict, headers: Mapping[str, str], concurrencies: list[int],
            duration_s: float, cpu_root: int | None = None, warmup_s: float = 2.0) -> list[dict]:
    """wrk at each concurrency (after a warm-up); with `cpu_root`, the CPU-ms per request spent
    by that process and its descendants during the run."""
    if warmup_s > 0:
        run_wrk(target + "-warmup", url, body, headers, 8, warmup_s)
    idle = idle_cores(cpu_root) if cpu_root else 0.0
    rows = []
    for c in concurrencies:
        before = tree_cpu(cpu_root) if cpu_root else {}
        # c=1 gives few samples per second: run it longer so p99 means something
        result: LoadResult = run_wrk(target, url, body, headers, c, duration_s * (2 if c == 1 else 1))
        row = result.as_dict()
        if cpu_root:
            cpu_s = cpu_delta(before, tree_cpu(cpu_root))
            ok = max(result.requests - result.errors, 1)
            net_s = max(cpu_s - idle * result.duration_s, 0.0)
            row["cpu_ms_per_request"] = round(net_s * 1000.0 / ok, 3)
            row["cpu_cores_busy"] = round(cpu_s / result.duration_s, 2)
            row["idle_cores"] = round(idle, 3)
        row["loadavg_1m"] = round(loadavg()[0], 2)
        rows.append(row)
    return rows


def idle_cores(root: int, seconds: float = 3.0) -> float:
    """CPU cores the process tree burns with no load (Ray's own housekeeping), to subtract."""
    before = tree_cpu(root)
    time.sleep(seconds)  # measuring a rate over a wall-clock interval, not waiting for an event
    return cpu_delta(before, tree_cpu(root)) / seconds


def added(rows: list[dict], direct: list[dict]) -> list[dict]:
    """Per concurrency: the target's p50/p95/p99 minus the direct ones (ms)."""
    base = {r["concurrency"]: r for r in direct}
    out = []
    for r in rows:
        d = base.get(r["concurrency"])
        if d is None:
            continue
        out.append({"concurrency": r["concurrency"],
                    **{f"added_{p}": round(r[p] - d[p], 2) for p in ("p50", "p95", "p99")}})
    return out


def best_rps(rows: list[dict], max_error_rate: float = 0.01) -> dict | None:
    good = [r for r in rows if r["error_rate"] < max_error_rate]
    return max(good, key=lambda r: r["rps"]) if good else None
