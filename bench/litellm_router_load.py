"""Runs inside bench/.venv-litellm (no Switchboard imports): LiteLLM's `Router.acompletion`
in-process, closed loop at each concurrency, beside the same loop calling the simulator directly
with aiohttp (the in-process baseline). Prints `RESULT {json}`.

    bench/.venv-litellm/bin/python bench/litellm_router_load.py '{"model_list": [...], ...}'
"""
from __future__ import annotations

import asyncio
import json
import sys
import time


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    s = sorted(samples_ms)
    if not s:
        return {"p50": 0.0, "p90": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "mean": 0.0}

    def pick(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))], 3)

    return {"p50": pick(0.50), "p90": pick(0.90), "p95": pick(0.95), "p99": pick(0.99),
            "max": round(s[-1], 3), "mean": round(sum(s) / len(s), 3)}


async def closed_loop(call, concurrency: int, duration_s: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            try:
                await call()
            except Exception:
                errors += 1
                continue
            latencies.append((time.perf_counter() - t0) * 1000.0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"concurrency": concurrency, "requests": len(latencies) + errors, "errors": errors,
            "duration_s": round(elapsed, 3), "rps": round(len(latencies) / elapsed, 1),
            **percentiles(latencies)}


async def main(args: dict) -> dict:
    import aiohttp
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    messages = [{"role": "user", "content": "hi"}]
    router = Router(model_list=args["model_list"], num_retries=0)
    url = args["sim_url"] + "/v1/chat/completions"
    body = {"model": args["model"], "messages": messages, "max_tokens": 16}
    headers = {"Authorization": f"Bearer {args['key']}"}
    out: dict[str, list] = {"direct_inprocess": [], "litellm_router": []}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def direct() -> None:
            async with session.post(url, json=body, headers=headers) as r:
                r.raise_for_status()
                await r.read()

        async def routed() -> None:
            await router.acompletion(model=args["model"], messages=messages, max_tokens=16)

        for call, name in ((direct, "direct_inprocess"), (routed, "litellm_router")):
            await closed_loop(call, 8, 3.0)  # warm-up
            await closed_loop(call, 1, 1.0)
            for c in args["concurrencies"]:
                # like the wrk runs: concurrency 1 runs twice as long
                out[name].append(await closed_loop(call, c, args["duration_s"] * (2 if c == 1 else 1)))
    return out


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(main(json.loads(sys.argv[1])))
    print("RESULT " + json.dumps(result), flush=True)
