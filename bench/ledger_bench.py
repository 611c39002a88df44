"""Ledger benchmark: rows per second sustained, and the latency the pending-row commit adds to a
request (p50/p99), with the durability the app runs with (WAL, synchronous=FULL).

    .venv/bin/python -m bench.ledger_bench [--seconds 5] [--concurrency 1,20,100] [--ray]

Each simulated request does what the gateway does: `admit_and_open_pending` (the pending row,
checked against a per-key daily budget; the latency measured here is what a request waits before
its provider call), then `finalize` (the upsert with the real cost). Rows/s counts finalized
requests. In-process numbers are the LedgerStore alone (group commit + fsync); `--ray` adds the
same through a LedgerActor and the replica's RayLedgerClient (one actor hop each way, ~1.5 ms on
this kind of machine). `--id-kinds` measures the ledger's CPU per final row as the replicas send
them (batches of `--batch` into a ledger already holding `--prefill` rows) with random (UUIDv4)
and time-ordered (UUIDv7, what the gateway mints) request ids, side by side. Prints tables and
writes bench/out/ledger.json. Not part of the tests.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Awaitable, Callable

from providers.request_ids import new_request_id
from runtime.finops.budget import Budget, Scope
from runtime.finops.ledger_store import FinalRow, LedgerStore, PendingRow
from runtime.finops.reports import nearest_rank

OUT = Path(__file__).resolve().parent / "out" / "ledger.json"
BUDGET_USD = 1e6  # large: every admission runs the budget check, none is refused


class Port:
    """What a request needs from the ledger: the two calls on its path."""

    def __init__(self, admit: Callable[..., Awaitable[Any]], finalize: Callable[..., Awaitable[Any]]) -> None:
        self.admit, self.finalize = admit, finalize


async def one_request(port: Port, key_id: str, budget: Budget) -> float:
    rid = new_request_id()
    now = time.time()
    pending = PendingRow(request_id=rid, user_id="bench", key_id=key_id, created_at=now,
                         platform="gemini", model="gemini-2.5-flash-lite", input_tokens=40,
                         output_tokens=1000, reserved_usd=0.000404)
    started = time.perf_counter()
    await port.admit(pending, [budget])
    waited_ms = (time.perf_counter() - started) * 1000.0
    await port.finalize(FinalRow(request_id=rid, user_id="bench", key_id=key_id, created_at=now,
                                 platform="gemini", model="gemini-2.5-flash-lite", input_tokens=40,
                                 output_tokens=321, reserved_usd=0.000404, cost_usd=0.0001324,
                                 latency_ms=250.0))
    return waited_ms


async def run_level(port: Port, concurrency: int, seconds: float) -> dict[str, Any]:
    key_id = f"key_bench{concurrency}"
    budget = Budget(f"key:{key_id}:daily", BUDGET_USD, "day", Scope.key(key_id))
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            latencies.append(await one_request(port, key_id, budget))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "concurrency": concurrency,
        "requests": len(ordered),
        "rows_per_s": round(len(ordered) / elapsed, 1),
        "pending_commit_p50_ms": round(nearest_rank(ordered, 50) or 0.0, 3),
        "pending_commit_p99_ms": round(nearest_rank(ordered, 99) or 0.0, 3),
    }


async def bench_store(db_path: str, levels: list[int], seconds: float) -> list[dict[str, Any]]:
    async with LedgerStore(db_path) as store:
        port = Port(store.admit_and_open_pending, store.finalize)
        rows = [await run_level(port, c, seconds) for c in levels]
        commits, ops = store.stats.commits, store.stats.ops
    for row in rows:
        row["path"] = "in-process"
    rows[-1]["ops_per_commit_overall"] = round(ops / max(commits, 1), 1)
    return rows


def bench_ray(db_path: str, levels: list[int], seconds: float) -> list[dict[str, Any]]:
    import ray

    from runtime.app import use_loopback_only
    from runtime.finops.ledger import LedgerActor, ledger_actor_options
    from runtime.finops.ledger_client import RayLedgerClient

    use_loopback_only()
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", configure_logging=False,
             log_to_driver=False, namespace="ledger-bench-" + uuid.uuid4().hex[:6])
    try:
        options = {**ledger_actor_options("ledger-bench"), "lifetime": None}
        handle = ray.remote(LedgerActor).options(**options).remote(db_path)
        ray.get(handle.__ray_ready__.remote())
        client = RayLedgerClient(handle)

        async def run() -> list[dict[str, Any]]:
            port = Port(client.admit_and_open_pending, client.finalize)
            return [await run_level(port, c, seconds) for c in levels]

        rows = asyncio.run(run())
        ray.kill(handle)
    finally:
        ray.shutdown()
    for row in rows:
        row["path"] = "ray actor"
    return rows


ID_KINDS: dict[str, Callable[[], str]] = {
    "uuid4 (random)": lambda: "req_" + uuid.uuid4().hex,
    "uuid7 (time-ordered)": new_request_id,
}


def _final_rows(make_id: Callable[[], str], n: int) -> list[FinalRow]:
    now = time.time()
    return [FinalRow(request_id=make_id(), user_id="bench", key_id="key_bench", created_at=now,
                     endpoint="/v1/chat/completions", platform="openai", model="gpt-4o-mini",
                     input_tokens=12, output_tokens=20, reserved_usd=0.00002, cost_usd=0.000014,
                     latency_ms=1.5) for _ in range(n)]


async def row_cpu(db_path: str, make_id: Callable[[], str], prefill: int, batch: int,
                  batches: int) -> dict[str, float]:
    """The ledger store's CPU (process time: its thread and the event loop) per final row."""
    async with LedgerStore(db_path) as store:
        for _ in range(prefill // 1000):
            await store.finalize_many(_final_rows(make_id, 1000))
        work = [_final_rows(make_id, batch) for _ in range(batches)]
        cpu, wall = time.process_time(), time.perf_counter()
        for rows in work:
            await store.finalize_many(rows)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    n = batch * batches
    return {"cpu_ms_per_row": round(1e3 * cpu / n, 4), "wall_ms_per_row": round(1e3 * wall / n, 4)}


def bench_id_kinds(tmp: str, prefill: int, batch: int, rounds: int = 3) -> list[dict[str, Any]]:
    """Both kinds alternately, `rounds` times each (a shared machine drifts); the median."""
    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in ID_KINDS}
    for i in range(rounds):
        for kind, make_id in ID_KINDS.items():
            path = os.path.join(tmp, f"ids-{i}-{len(runs[kind])}-{kind[:5]}.sqlite3")
            runs[kind].append(asyncio.run(row_cpu(path, make_id, prefill, batch, 40)))
    rows = []
    for kind, results in runs.items():
        cpu = sorted(r["cpu_ms_per_row"] for r in results)
        rows.append({"ids": kind, "prefill": prefill, "batch": batch, "rounds": rounds,
                     "cpu_ms_per_row_median": cpu[len(cpu) // 2], "cpu_ms_per_row_all": cpu})
    return rows


def print_id_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'request ids':<22} {'prefill':>8} {'batch':>6} {'CPU ms/row (median)':>20}  all")
    for r in rows:
        print(f"{r['ids']:<22} {r['prefill']:>8} {r['batch']:>6} {r['cpu_ms_per_row_median']:>20}  {r['cpu_ms_per_row_all']}")
    base, ordered = (r["cpu_ms_per_row_median"] for r in rows)
    print(f"time-ordered / random: x{ordered / base:.2f}")


def print_table(rows: list[dict[str, Any]]) -> None:
    head = f"{'path':<11} {'concurrency':>11} {'requests':>9} {'rows/s':>9} {'pending p50 ms':>15} {'pending p99 ms':>15}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['path']:<11} {r['concurrency']:>11} {r['requests']:>9} {r['rows_per_s']:>9} "
              f"{r['pending_commit_p50_ms']:>15} {r['pending_commit_p99_ms']:>15}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per concurrency level")
    parser.add_argument("--concurrency", default="1,20,100", help="comma-separated levels")
    parser.add_argument("--ray", action="store_true", help="also through a LedgerActor on Ray")
    parser.add_argument("--id-kinds", action="store_true", help="CPU per row, random vs time-ordered ids")
    parser.add_argument("--prefill", type=int, default=100_000, help="rows in the ledger before --id-kinds")
    parser.add_argument("--batch", type=int, default=128, help="final rows per write in --id-kinds")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    id_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-bench-") as tmp:
        rows = asyncio.run(bench_store(os.path.join(tmp, "store.sqlite3"), levels, args.seconds))
        if args.ray:
            rows += bench_ray(os.path.join(tmp, "actor.sqlite3"), levels, args.seconds)
        if args.id_kinds:
            id_rows = bench_id_kinds(tmp, args.prefill, args.batch)
    result = {
        "what": "ledger rows/s sustained (admit+finalize per request) and pending-row commit latency",
        "durability": "WAL, synchronous=FULL, group commit",
        "seconds_per_level": args.seconds,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "loadavg_at_end": os.getloadavg(),
        "rows": rows,
        "id_kinds": id_rows,
    }
    print_table(rows)
    if id_rows:
        print_id_table(id_rows)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return result


if __name__ == "__main__":
    main()
