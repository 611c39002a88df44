"""Ensemble: the wall time of POST /api/ai/ensemble vs. its slowest member + the synthesis (as
the gateway reports them), and vs. the simulator's nominal latencies for those models."""
from __future__ import annotations

import time
from typing import Mapping

import httpx

from bench.stats import summarize


def nominal_ms(catalog, platform: str, model: str, output_tokens: int, scale: float) -> float:
    """The simulator's latency for a model: (ttft + tokens / tokens_per_s) x latency scale."""
    spec = catalog.resolve(model, platform)
    return (spec.ttft_ms + 1000.0 * output_tokens / spec.tokens_per_s) * scale


def run(base_url: str, headers: Mapping[str, str], catalog, latency_scale: float, n: int = 6,
        max_tokens: int = 32, members: list[str] | None = None) -> dict:
    url = f"{base_url}/api/ai/ensemble"
    body = {"query": "Name two trade-offs of eventual consistency.", "max_tokens": max_tokens}
    if members:
        body["models"] = members
    runs, errors = [], []
    with httpx.Client(timeout=120, trust_env=False) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            r = client.post(url, json=body, headers=dict(headers))
            wall = (time.perf_counter() - t0) * 1000.0
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                continue
            data = r.json()
            ok = [m for m in data["members"] if m["ok"]]
            slowest = max((m["latency_ms"] for m in ok), default=0.0)
            synth = data["synthesis"]["latency_ms"]
            slow_nominal = max((nominal_ms(catalog, m["platform"], m["model"], max_tokens, latency_scale)
                                for m in ok), default=0.0)
            synth_nominal = nominal_ms(catalog, data["synthesis"]["platform"], data["synthesis"]["model"],
                                       max_tokens, latency_scale)
            runs.append({
                "wall_ms": wall, "slowest_member_ms": slowest, "synthesis_ms": synth,
                "sum_members_ms": sum(m["latency_ms"] for m in ok),
                "ratio": wall / (slowest + synth) if slowest + synth else None,
                "nominal_ms": slow_nominal + synth_nominal,
                "members": [f"{m['platform']}/{m['model']}" for m in data["members"]],
                "members_ok": len(ok), "synthesis_model": f"{data['synthesis']['platform']}/{data['synthesis']['model']}",
            })
    return {
        "runs": len(runs), "errors": errors[:3], "max_tokens": max_tokens,
        "members": runs[0]["members"] if runs else members, "synthesis": runs[0]["synthesis_model"] if runs else None,
        "wall_ms": summarize([r["wall_ms"] for r in runs]),
        "slowest_plus_synthesis_ms": summarize([r["slowest_member_ms"] + r["synthesis_ms"] for r in runs]),
        "sum_of_members_plus_synthesis_ms": summarize([r["sum_members_ms"] + r["synthesis_ms"] for r in runs]),
        "nominal_slowest_plus_synthesis_ms": summarize([r["nominal_ms"] for r in runs]),
        "ratio_wall_to_slowest_plus_synthesis": summarize([r["ratio"] for r in runs if r["ratio"]]),
    }
