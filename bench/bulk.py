"""Bulk job: N short prompts on chain `bulk` against the simulator's per-model rpm/tpm windows
(same window on both sides: Switchboard's `protection.window_scale`, the simulator's
`--window-s`). Completion time vs. the rate-limit minimum of the chain's combined limits,
upstream 429s, and the cost of the same prompts on `code_quality`."""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Mapping

import aiohttp

MAX_CLIENT_ATTEMPTS = 20


@dataclass(frozen=True)
class ModelLimit:
    platform: str
    model: str
    rpm: int | None
    tpm: int | None

    def per_window(self, tokens_per_request: float) -> float:
        """Requests this model admits per window (math.inf when unlimited)."""
        by_requests = self.rpm if self.rpm is not None else math.inf
        by_tokens = math.floor(self.tpm / tokens_per_request) if self.tpm is not None else math.inf
        return min(by_requests, by_tokens)


def rate_limit_minimum(n: int, limits: list[ModelLimit], tokens_per_request: float, window_s: float,
                       service_s: float) -> float:
    """Shortest time to finish `n` requests when each model admits its per-window capacity in any
    sliding window: the first window's worth at t=0, the next at t=W, ...; plus one request's
    service time for the last batch."""
    capacity = sum(m.per_window(tokens_per_request) for m in limits)
    if capacity <= 0:
        return math.inf
    if math.isinf(capacity):
        return service_s
    return (math.ceil(n / capacity) - 1) * window_s + service_s


def prompts(n: int) -> list[str]:
    return [f"Translate to French, reply with the translation only: 'Settings menu item {i}'"
            for i in range(n)]


async def _one(session: aiohttp.ClientSession, url: str, body: dict, headers: Mapping[str, str],
               t0: float) -> dict:
    retries = 0
    for _ in range(MAX_CLIENT_ATTEMPTS):
        async with session.post(url, json=body, headers=dict(headers)) as r:
            text = await r.text()
            h = r.headers
        if r.status == 200:
            return {"ok": True, "t": time.perf_counter() - t0, "retries": retries,
                    "platform": h.get("x-switchboard-platform"),
                    "model": h.get("x-switchboard-model"),
                    "cost": float(h.get("x-switchboard-cost-usd") or 0.0),
                    "attempts": int(h.get("x-switchboard-attempts") or 1)}
        if r.status not in (429, 503):
            return {"ok": False, "t": time.perf_counter() - t0, "status": r.status,
                    "error": text[:200], "retries": retries}
        retries += 1
        wait = float(h.get("retry-after") or 1.0)
        await asyncio.sleep(min(max(wait, 0.2), 10.0))  # a bulk client honouring Retry-After
    return {"ok": False, "t": time.perf_counter() - t0, "status": 429, "retries": retries}


async def run_job(url: str, model: str, texts: list[str], headers: Mapping[str, str],
                  concurrency: int, max_tokens: int, deadline_ms: int) -> dict:
    """The job from an aiohttp client: httpx's pool costs ~9 CPU-ms per request at this
    concurrency, which on 2 shared cores made the client, not the gateway, the bottleneck."""
    sem = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=deadline_ms / 1000 + 30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as session:
        t0 = time.perf_counter()

        async def task(text: str) -> dict:
            body = {"model": model, "messages": [{"role": "user", "content": text}],
                    "max_tokens": max_tokens, "cache": "off", "deadline_ms": deadline_ms}
            async with sem:
                return await _one(session, url, body, headers, t0)

        rows = await asyncio.gather(*(task(t) for t in texts))
        elapsed = time.perf_counter() - t0
    ok = [r for r in rows if r["ok"]]
    served: dict[str, int] = {}
    for r in ok:
        key = f"{r['platform']}/{r['model']}"
        served[key] = served.get(key, 0) + 1
    return {
        "model": model, "prompts": len(texts), "ok": len(ok), "failed": len(rows) - len(ok),
        "failures": [r for r in rows if not r["ok"]][:3],
        "completion_s": round(max((r["t"] for r in ok), default=elapsed), 3),
        "client_retries": sum(r["retries"] for r in rows),
        "fallback_attempts": sum(r["attempts"] - 1 for r in ok),
        "cost_usd": round(sum(r["cost"] for r in ok), 6),
        "served_by": served,
        "done_times_s": sorted(round(r["t"], 3) for r in ok),
    }


def upstream_statuses(stats: dict, keys: set[tuple[str, str]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for platform, models in stats.get("platforms", {}).items():
        for model, c in models.items():
            if (platform, model) in keys:
                for status, n in c["statuses"].items():
                    out[status] = out.get(status, 0) + n
    return out


def tokens_per_request(stats: dict, keys: set[tuple[str, str]]) -> float:
    requests = tokens = 0
    for platform, models in stats.get("platforms", {}).items():
        for model, c in models.items():
            if (platform, model) in keys:
                requests += c["requests"] - c["errors"]
                tokens += c["input_tokens"] + c["output_tokens"]
    return tokens / requests if requests else 1.0
