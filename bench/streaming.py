"""Streaming: time to first token and the gap between content chunks, Switchboard vs. the same
paced simulator stream called directly (OpenAI protocol, sequential streams, one at a time)."""
from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Mapping

import httpx

from bench.stats import summarize

MODEL = "anthropic/claude-sonnet-4.5"  # an OpenRouter model: OpenAI protocol, 200 rpm
PLATFORM = "openrouter"


async def one_stream(client: httpx.AsyncClient, url: str, body: dict, headers: Mapping[str, str]) -> dict:
    """TTFT = request sent -> first non-empty content delta; gaps between content deltas."""
    t0 = time.perf_counter()
    stamps: list[float] = []
    async with client.stream("POST", url, json=body, headers=dict(headers)) as r:
        if r.status_code != 200:
            await r.aread()
            return {"error": f"HTTP {r.status_code}: {r.text[:200]}"}
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    stamps.append(time.perf_counter())
    if not stamps:
        return {"error": "no content chunk"}
    gaps = [(b - a) * 1000.0 for a, b in zip(stamps, stamps[1:])]
    return {"ttft_ms": (stamps[0] - t0) * 1000.0, "gap_ms": statistics.fmean(gaps) if gaps else 0.0,
            "chunks": len(stamps), "total_ms": (stamps[-1] - t0) * 1000.0}


async def run_streams(url: str, body: dict, headers: Mapping[str, str], n: int) -> dict:
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        await one_stream(client, url, body, headers)  # warm-up
        runs = [await one_stream(client, url, body, headers) for _ in range(n)]
    ok = [r for r in runs if "error" not in r]
    return {
        "streams": n,
        "errors": [r["error"] for r in runs if "error" in r][:3],
        "ttft_ms": summarize([r["ttft_ms"] for r in ok]),
        "gap_ms": summarize([r["gap_ms"] for r in ok]),
        "chunks_mean": statistics.fmean([r["chunks"] for r in ok]) if ok else 0,
        "total_ms": summarize([r["total_ms"] for r in ok]),
    }


def run(sim_url: str, switchboard_url: str, sb_headers: Mapping[str, str], n: int = 20,
        max_tokens: int = 32) -> dict:
    direct_body = {"model": MODEL, "messages": [{"role": "user", "content": "Stream a short answer."}],
                   "max_tokens": max_tokens, "stream": True}
    sb_body = {**direct_body, "model": f"{PLATFORM}/{MODEL}", "cache": "off"}
    direct = asyncio.run(run_streams(f"{sim_url}/api/v1/chat/completions", direct_body,
                                     {"authorization": "Bearer sim-bench-key"}, n))
    routed = asyncio.run(run_streams(f"{switchboard_url}/v1/chat/completions", sb_body, sb_headers, n))
    out = {"model": f"{PLATFORM}/{MODEL}", "max_tokens": max_tokens, "direct": direct, "switchboard": routed}
    if direct["ttft_ms"] and routed["ttft_ms"]:
        out["added_ttft_p50_ms"] = round(routed["ttft_ms"]["p50"] - direct["ttft_ms"]["p50"], 2)
        out["added_gap_mean_ms"] = round(routed["gap_ms"]["mean"] - direct["gap_ms"]["mean"], 3)
    return out
