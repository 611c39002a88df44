"""Cache through the gateway: exact-hit and semantic-hit latency next to the bare (cache off)
request, and hit rate + savings on a replayed workload of new questions, exact repeats and
paraphrases (GPTCache's paraphrase pairs)."""
from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Mapping

import httpx

from bench.loadgen import run_wrk
from bench.stats import summarize

PAIRS = Path("/work/shared/data/gptcache-paraphrase-pairs.json")
MODEL = "gpt-4o"


def body(text: str, cache: str) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 16,
            "temperature": 0, "cache": cache}


def hit_latency_wrk(url: str, headers: Mapping[str, str], duration_s: float) -> dict:
    """wrk at concurrency 1: the bare request (cache off) and an exact hit of the same prompt."""
    text = "What is the capital of France? Answer in one word."
    httpx.post(url, json=body(text, "exact"), headers=dict(headers), timeout=30, trust_env=False)  # prime
    bare = run_wrk("cache-bare", url, body(text, "off"), headers, 1, duration_s)
    exact = run_wrk("cache-exact", url, body(text, "exact"), headers, 1, duration_s)
    return {"bare": bare.as_dict(), "exact_hit": exact.as_dict()}


def build_workload(pairs: list[dict], n_origins: int, n_requests: int, seed: int = 7) -> list[dict]:
    """A replay: each step is a new origin, an exact repeat of a seen origin, or a paraphrase of
    a seen origin (25% / 45% / 30% once something has been seen)."""
    rng = random.Random(seed)
    by_origin: dict[str, dict] = {}
    for p in pairs:
        by_origin.setdefault(p["origin"], p)
    pool = list(by_origin.values())
    rng.shuffle(pool)
    pool = pool[:n_origins]
    seen: list[dict] = []
    out = []
    while len(out) < n_requests:
        roll = rng.random()
        if pool and (not seen or roll < 0.25):
            p = pool.pop()
            seen.append(p)
            out.append({"kind": "new", "origin": p["origin"], "text": p["origin"]})
        elif roll < 0.70 or not seen:
            p = rng.choice(seen)
            out.append({"kind": "repeat", "origin": p["origin"], "text": p["origin"]})
        else:
            p = rng.choice(seen)
            out.append({"kind": "paraphrase", "origin": p["origin"], "text": p["similar"]})
    return out


def batches(workload: list[dict], size: int) -> list[list[dict]]:
    """A new origin alone (its answer is cached before anything refers to it); repeats and
    paraphrases in concurrent groups of up to `size`."""
    out: list[list[dict]] = []
    for step in workload:
        if step["kind"] == "new" or not out or out[-1][0]["kind"] == "new" or len(out[-1]) >= size:
            out.append([step])
        else:
            out[-1].append(step)
    return out


async def replay(url: str, headers: Mapping[str, str], workload: list[dict], concurrency: int) -> dict:
    """Origins are sent in order (a step waits for the origin's first answer to be cached)."""
    answers: dict[str, str] = {}
    rows: list[dict] = []
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        async def send(step: dict) -> dict:
            t0 = time.perf_counter()
            r = await client.post(url, json=body(step["text"], "semantic"), headers=dict(headers))
            ms = (time.perf_counter() - t0) * 1000.0
            text = r.json()["choices"][0]["message"]["content"] if r.status_code == 200 else None
            return {**step, "status": r.status_code, "ms": ms, "text_out": text,
                    "cache": r.headers.get("x-switchboard-cache", ""),
                    "cost": float(r.headers.get("x-switchboard-cost-usd") or 0.0)}

        for batch in batches(workload, concurrency):
            done = await asyncio.gather(*(send(s) for s in batch))
            for row in done:
                if row["kind"] == "new" and row["text_out"] is not None:
                    answers.setdefault(row["origin"], row["text_out"])
            rows.extend(done)
    return score(rows, answers)


def is_hit(row: dict) -> bool:
    return row["cache"] not in ("miss", "bypass", "")


def score(rows: list[dict], answers: dict[str, str]) -> dict:
    """Hit rate by kind of step; a semantic hit is wrong when it answers a new question, or
    answers a paraphrase with another origin's text (checkable when origins' answers differ)."""
    hits = [r for r in rows if is_hit(r)]
    semantic = [r for r in rows if r["cache"] == "semantic"]
    distinct = len(set(answers.values())) == len(answers)
    wrong = [r for r in semantic if r["kind"] == "new"
             or (distinct and answers.get(r["origin"]) not in (None, r["text_out"]))]
    by_kind = {}
    for kind in ("new", "repeat", "paraphrase"):
        ks = [r for r in rows if r["kind"] == kind]
        by_kind[kind] = {"requests": len(ks), "hits": sum(1 for r in ks if is_hit(r))}
    return {
        "requests": len(rows), "errors": sum(1 for r in rows if r["status"] != 200),
        "hits": len(hits), "semantic_hits": len(semantic), "hit_rate": round(len(hits) / len(rows), 4),
        "wrong_semantic_hits": len(wrong), "answers_distinct": distinct, "by_kind": by_kind,
        "spent_usd": round(sum(r["cost"] for r in rows), 8),
        "latency_ms": {
            "exact_hit": summarize([r["ms"] for r in hits if r["cache"] != "semantic"]),
            "semantic_hit": summarize([r["ms"] for r in semantic]),
            "miss": summarize([r["ms"] for r in rows if r["cache"] == "miss"]),
        },
    }


def cache_stats(base_url: str, headers: Mapping[str, str]) -> dict:
    r = httpx.get(f"{base_url}/api/ai/cache/stats", headers=dict(headers), timeout=30, trust_env=False)
    return r.json() if r.status_code == 200 else {"error": r.status_code}


def run(base_url: str, headers: Mapping[str, str], duration_s: float = 8.0, n_origins: int = 150,
        n_requests: int = 500, concurrency: int = 4) -> dict:
    url = f"{base_url}/v1/chat/completions"
    latency = hit_latency_wrk(url, headers, duration_s)
    pairs = json.loads(PAIRS.read_text(encoding="utf-8"))
    before = cache_stats(base_url, headers)
    workload = build_workload(pairs, n_origins, n_requests)
    result = asyncio.run(replay(url, headers, workload, concurrency))
    after = cache_stats(base_url, headers)
    saved = (after.get("saved_usd") or 0.0) - (before.get("saved_usd") or 0.0)
    result["saved_usd"] = round(saved, 8)
    result["savings_share"] = round(saved / (saved + result["spent_usd"]), 4) if saved + result["spent_usd"] else 0.0
    return {"latency": latency, "replay": result, "stats_after": after}
