"""bench/RESULTS.md from bench/out/results.json: tables, the PNG plots, and the targets checked.

    .venv/bin/python -m bench.report      # re-render from the last run's results.json
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import hotpath_report, plots
from bench.tables import cell as _f, rows_of as _rows, table
from bench.procs import OUT

HERE = Path(__file__).resolve().parent
RESULTS_MD = HERE / "RESULTS.md"


def _err(value: Any) -> str | None:
    return value.get("error") if isinstance(value, dict) else None


def added(rows: list[dict], base: list[dict]) -> list[dict]:
    by_c = {r["concurrency"]: r for r in base}
    return [{"concurrency": r["concurrency"],
             **{f"added_{p}": round(r[p] - by_c[r["concurrency"]][p], 2) for p in ("p50", "p95", "p99")}}
            for r in rows if r["concurrency"] in by_c]


def best(rows: list[dict]) -> dict | None:
    good = [r for r in rows if r.get("errors", 0) / max(r.get("requests", 1), 1) < 0.01]
    return max(good, key=lambda r: r["rps"]) if good else None


class Report:
    def __init__(self, res: dict) -> None:
        self.res = res
        c = res.get("conditions", {})
        p = res.get("parameters", {})
        self.footer = (f"{c.get('machine', '?')}; Python {c.get('python')}, Ray {c.get('ray')}; "
                       f"load from {c.get('wrk', 'wrk')}; {p.get('duration_s')} s per point; "
                       f"loadavg at start {c.get('loadavg_at_start')}; {res.get('started', '')}")
        self.parts: list[str] = []

    def add(self, *texts: str) -> None:
        self.parts.extend(texts)

    # -- sections --------------------------------------------------------------------------
    def targets(self) -> dict[str, list[dict]]:
        """Every overhead series by display name (LiteLLM Router's own in-process baseline kept)."""
        res, out = self.res, {}
        out["direct (wrk)"] = _rows(res.get("direct"))
        for key in sorted(k for k in res if k.startswith("switchboard_") and not k.endswith("_r2")):
            out[f"Switchboard, {key.removeprefix('switchboard_')} proxy"] = _rows(res[key])
        out["LiteLLM proxy"] = _rows(res.get("litellm_proxy"))
        router = res.get("litellm_router") or {}
        if isinstance(router, dict) and "litellm_router" in router:
            out["LiteLLM Router (in-process)"] = router["litellm_router"]
            out["direct (in-process aiohttp)"] = router["direct_inprocess"]
        return {k: v for k, v in out.items() if v}

    def overhead(self) -> None:
        series = self.targets()
        direct = series.get("direct (wrk)", [])
        inproc = series.get("direct (in-process aiohttp)", [])
        adds = {name: added(rows, inproc if "in-process" in name else direct)
                for name, rows in series.items() if not name.startswith("direct")}
        rows = []
        for name, rs in series.items():
            base = inproc if "Router" in name else direct
            a = {x["concurrency"]: x for x in added(rs, base)} if not name.startswith("direct") else {}
            for r in rs:
                ad = a.get(r["concurrency"], {})
                rows.append([name, r["concurrency"], r["rps"], r["p50"], r["p95"], r["p99"],
                             ad.get("added_p50"), ad.get("added_p95"), ad.get("added_p99"),
                             f"{r['errors']}/{r['requests']}", r.get("cpu_ms_per_request"),
                             r.get("loadavg_1m")])
        png = plots.overhead(series, adds, self.footer) if adds else None
        p = self.res.get("parameters", {})
        self.add("## Overhead: the same 50 ms upstream, four ways",
                 f"Upstream: the simulator with `--fixed-latency-ms {p.get('fixed_latency_ms')} --no-limits`, "
                 "model `gpt-4o`, `max_tokens` 16, cache off. wrk (1 thread, C) loads the direct call, "
                 "Switchboard's `/v1/chat/completions` and LiteLLM's proxy from its own process; LiteLLM's "
                 "Router runs in-process with its load loop, so its *added* latency is against the same loop "
                 "calling the simulator with aiohttp. Added = target percentile − baseline percentile at the "
                 "same concurrency. CPU ms/request = user+system CPU of the serving process tree (for "
                 "Switchboard: driver, Ray, proxy, replica, actors) during the run ÷ answered requests. "
                 "Closed loop; concurrency 1 runs twice as long.", "")
        self.add(table(["target", "conc.", "req/s", "p50", "p95", "p99", "added p50", "added p95",
                        "added p99", "errors", "CPU ms/req", "load 1m"], rows), "")
        if png:
            self.add(f"![overhead]({png.name})", f"*{self.footer}*", "")
        for key in ("litellm_proxy", "litellm_router"):
            if _err(self.res.get(key)):
                self.add(f"{key}: **failed**: `{_err(self.res[key])[:300]}`", "")
        self.check_targets(series, adds)

    def check_targets(self, series: dict, adds: dict) -> None:
        lite = adds.get("LiteLLM proxy")
        lite_best = best(series.get("LiteLLM proxy", []))
        lines = []
        for name, a in adds.items():
            if not name.startswith("Switchboard") or not lite:
                continue
            by_c = {x["concurrency"]: x for x in a}
            lc = {x["concurrency"]: x for x in lite}
            sb_best = best(series[name])
            checks = []
            if 1 in by_c and 1 in lc:
                checks.append(("added p50 at concurrency 1", by_c[1]["added_p50"], lc[1]["added_p50"], "ms"))
            if 64 in by_c and 64 in lc:
                checks.append(("added p99 at concurrency 64", by_c[64]["added_p99"], lc[64]["added_p99"], "ms"))
            for label, mine, theirs, unit in checks:
                lines.append([name, label, f"{mine:.1f} {unit}", f"{theirs:.1f} {unit}",
                              "**met**" if mine < theirs else "**missed**"])
            if sb_best and lite_best:
                lines.append([name, "max sustained req/s (<1% errors)", f"{sb_best['rps']:.0f}",
                              f"{lite_best['rps']:.0f}", "**met**" if sb_best["rps"] > lite_best["rps"] else "**missed**"])
        if lines:
            self.add("### Targets vs. LiteLLM's proxy", table(["Switchboard", "measure", "Switchboard",
                                                              "LiteLLM proxy", "target"], lines), "")

    def modes(self) -> None:
        res, bars, rows = self.res, [], []
        for key in sorted(k for k in res if k.startswith("switchboard_")):
            v = res[key]
            if _err(v):
                rows.append([key, "–", "–", "–", "–", "–", f"failed: {_err(v)[:120]}"])
                continue
            b = best(v.get("rows", []))
            if not b:
                continue
            cpu = b.get("cpu_ms_per_request")
            label = f"{v['mode']} ×{v['replicas']}"
            bars.append((label, b["rps"], cpu or 0.0))
            rows.append([label, b["concurrency"], b["rps"], b["p50"], cpu, b.get("cpu_cores_busy"),
                         f"{1000.0 / cpu:,.0f}" if cpu else "–"])
        if not rows:
            return
        png = plots.modes(bars, self.footer) if bars else None
        self.add("## Scale: Serve proxy modes and ingress replicas",
                 "`default` = Serve's Python HTTP proxy; `throughput` = `RAY_SERVE_THROUGHPUT_OPTIMIZED=1` "
                 "(direct ingress: the replica serves HTTP itself, gRPC between Ray parts); `haproxy` = that "
                 "plus `RAY_SERVE_ENABLE_HA_PROXY=1` (Debian's haproxy binary in front; binds 0.0.0.0 on "
                 "8404/9101/30000+). Best run per setting (highest req/s with < 1% errors). Projection: "
                 "requests/s per core = 1000 ÷ CPU ms per request (all of the gateway's processes).", "",
                 table(["setting", "at conc.", "req/s", "p50 ms", "CPU ms/req", "cores busy", "req/s per core"], rows), "")
        if png:
            self.add(f"![modes]({png.name})", f"*{self.footer}*", "")
        if res.get("best_mode"):
            self.add(f"Fastest single-replica mode here: **{res['best_mode']}** (the functional runs below used it).", "")

    def streaming(self, s: dict) -> None:
        if not s or _err(s):
            return self._failed("Streaming", s)
        rows = []
        for who in ("direct", "switchboard"):
            d = s[who]
            rows.append([who, d["ttft_ms"]["p50"] if d["ttft_ms"] else None, d["ttft_ms"]["p95"] if d["ttft_ms"] else None,
                         d["gap_ms"]["mean"] if d["gap_ms"] else None, d["chunks_mean"], f"{len(d['errors'])} kinds"])
        self.add("## Streaming", f"`{s['model']}` on the paced simulator (its ttft and tokens/s × "
                 f"{self.res['parameters'].get('paced_latency_scale')}), `max_tokens` {s['max_tokens']}, "
                 f"{s['direct']['streams']} sequential streams each. TTFT = request sent → first content delta.", "",
                 table(["path", "TTFT p50 ms", "TTFT p95 ms", "mean gap between chunks ms", "chunks", "errors"], rows), "",
                 f"Added TTFT p50: **{_f(s.get('added_ttft_p50_ms'))} ms**; added mean inter-chunk gap: "
                 f"**{_f(s.get('added_gap_mean_ms'), 3)} ms**.", "")

    def ensemble(self, e: dict) -> None:
        if not e or _err(e):
            return self._failed("Ensemble", e)
        g = lambda k: (e.get(k) or {}).get("p50")  # noqa: E731
        self.add("## Ensemble", f"`POST /api/ai/ensemble`, members {', '.join(e.get('members') or [])}, "
                 f"synthesis on {e.get('synthesis')}, `max_tokens` {e['max_tokens']}, {e['runs']} runs (p50 shown).", "",
                 table(["wall", "slowest member + synthesis (gateway-reported)", "sum of members + synthesis",
                        "simulator nominal slowest + synthesis", "wall ÷ (slowest + synthesis)"],
                       [[g("wall_ms"), g("slowest_plus_synthesis_ms"), g("sum_of_members_plus_synthesis_ms"),
                         g("nominal_slowest_plus_synthesis_ms"), (e.get("ratio_wall_to_slowest_plus_synthesis") or {}).get("p50")]]),
                 "")

    def cache(self, c: dict) -> None:
        if not c or _err(c):
            return self._failed("Cache", c)
        lat, rep = c["latency"], c["replay"]
        direct = {r["concurrency"]: r for r in _rows(self.res.get("direct"))}.get(1)
        bare, exact = lat["bare"], lat["exact_hit"]
        overhead_p50 = bare["p50"] - direct["p50"] if direct else None
        rows = [["bare request (cache off), wrk", bare["p50"], bare["p99"], bare["requests"]],
                ["exact hit, wrk", exact["p50"], exact["p99"], exact["requests"]]]
        for kind, key in (("exact hit, replay client", "exact_hit"), ("semantic hit, replay client", "semantic_hit"),
                          ("miss, replay client", "miss")):
            s = rep["latency_ms"].get(key)
            if s:
                rows.append([kind, s["p50"], s["p99"], s["n"]])
        self.add("## Cache", "Latency at concurrency 1 through the gateway (model gpt-4o on the 50 ms simulator).", "",
                 table(["request", "p50 ms", "p99 ms", "n"], rows), "")
        if overhead_p50 is not None:
            verdict = "met" if exact["p50"] <= overhead_p50 + 2.0 else "missed"
            self.add(f"Bare gateway overhead p50 (bare − direct at concurrency 1): {overhead_p50:.1f} ms; "
                     f"exact-hit p50 {exact['p50']:.1f} ms → target *within 2 ms of the bare overhead*: **{verdict}**.", "")
        k = rep["by_kind"]
        self.add(f"Replayed workload ({rep['requests']} requests, `cache: semantic`, GPTCache paraphrase pairs: "
                 f"{k['new']['requests']} new questions, {k['repeat']['requests']} exact repeats, "
                 f"{k['paraphrase']['requests']} paraphrases, concurrency 4):", "",
                 table(["hit rate", "exact-repeat hits", "paraphrase hits", "wrong semantic hits", "spent $",
                        "saved $", "savings"],
                       [[f"{rep['hit_rate']:.1%}", f"{k['repeat']['hits']}/{k['repeat']['requests']}",
                         f"{k['paraphrase']['hits']}/{k['paraphrase']['requests']}", rep["wrong_semantic_hits"],
                         f"{rep['spent_usd']:.6f}", f"{rep['saved_usd']:.6f}", f"{rep['savings_share']:.1%}"]]), "")

    def bulk(self, b: dict) -> None:
        if not b or _err(b):
            return self._failed("Bulk job", b)
        job, q = b["job"], b["code_quality"]
        per_window = sum(m["per_window"] for m in b["limits"])
        png = plots.bulk(job["done_times_s"], per_window, b["window_s"], b["theoretical_min_s"], job["prompts"], self.footer)
        lim = ", ".join(f"{m['model']} {m['rpm']} rpm / {m['tpm']} tpm" for m in b["limits"])
        ratio = b.get("ratio_to_min")
        self.add("## Bulk job", f"{job['prompts']} short prompts on `switchboard/bulk` (`max_tokens` 16, client "
                 f"concurrency 128, honouring Retry-After) against the simulator's windows of {b['window_s']:.0f} s "
                 f"(Switchboard's `protection.window_scale` matches). Chain limits: {lim}; "
                 f"{b['tokens_per_request']} tokens per request → {per_window:.0f} requests per window.", "",
                 table(["completion s", "rate-limit minimum s", "ratio (target ≤ 1.1)", "upstream 429s (target 0)",
                        "failed", "client retries", "served by", "cost $", "same on code_quality $", "cost ratio"],
                       [[job["completion_s"], b["theoretical_min_s"], f"{ratio:.2f}" if ratio else "–",
                         b["upstream_429"], job["failed"], job["client_retries"],
                         ", ".join(f"{k} {v}" for k, v in job["served_by"].items()),
                         f"{job['cost_usd']:.4f}", f"{q['cost_usd']:.4f}",
                         f"{b['cost_ratio_vs_code_quality']:.1%}" if b.get("cost_ratio_vs_code_quality") else "–"]]), "",
                 f"![bulk]({png.name})", f"*{self.footer}*", "")

    def profile(self, p: dict) -> None:
        if not p or _err(p):
            return self._failed("Profile", p)
        self.add("## Profile of the hot path", "py-spy (200 Hz, non-blocking, active samples only) on the Serve "
                 "processes while wrk sends cache-off requests at concurrency 16. Share = fraction of samples "
                 "whose stack contains the function (inclusive) or ends in it (self).", "")
        for role, prof in p.items():
            if "error" in prof:
                self.add(f"{role}: py-spy failed: `{prof['error'][:200]}`", "")
                continue
            rows = [[x["function"], f"{x['share']:.1%}"] for x in prof["inclusive"][:12]]
            own = [[x["function"], f"{x['share']:.1%}"] for x in prof["self"][:8]]
            self.add(f"**{role}** ({prof['samples']} samples), inclusive:", "", table(["function", "share"], rows), "",
                     "self:", "", table(["function", "share"], own), "")

    def _failed(self, title: str, value: Any) -> None:
        if value:
            self.add(f"## {title}", f"**failed**: `{str(_err(value) or value)[:400]}`", "")

    def render(self) -> str:
        res = self.res
        c = res.get("conditions", {})
        self.add("# Benchmark results", "",
                 "Generated by `make bench` (`python -m bench.run_all`); do not edit by hand. One run, this machine, "
                 "loopback only.", "",
                 table(["condition", "value"], [[k, str(v)] for k, v in c.items()] +
                       [["parameters", json.dumps(res.get("parameters"))],
                        ["loadavg at end", str(res.get("loadavg_at_end"))],
                        ["total run time s", str(res.get("total_s"))]]), "",
                 "Load average matters: other work on the same 2 cores during the run inflates every latency "
                 "and deflates every throughput below, for all targets alike only if it is steady.", "")
        hotpath = hotpath_report.section()
        if hotpath:
            self.add(hotpath, "")
        self.overhead()
        self.modes()
        main = res.get("main_instance") or {}
        self.streaming(res.get("streaming"))
        self.ensemble(res.get("ensemble"))
        self.cache(res.get("cache"))
        self.bulk(res.get("bulk"))
        self.profile(res.get("profile"))
        if _err(main):
            self._failed("Functional runs", main)
        sem = res.get("semantic")
        if sem and not _err(sem):
            ch = sem["chosen"]
            self.add("## Semantic threshold", f"See [SEMANTIC.md](SEMANTIC.md): default {ch['threshold']} "
                     f"({ch['hits']} correct, {ch['wrong']} wrong, {ch['misses']} misses on 999 pairs).", "")
        led = res.get("ledger")
        if led:
            self.add("## Ledger", f"`bench/ledger_bench.py`: `{json.dumps(led)[:600]}`", "")
        notes = HERE / "NOTES.md"
        if notes.exists():
            self.add("## Reading the numbers (hand-written: bench/NOTES.md)", "", notes.read_text(encoding="utf-8"), "")
        self.add("## Timings (s)", table(["phase", "s"], [[k, v] for k, v in (res.get("timings_s") or {}).items()]), "")
        return "\n".join(self.parts) + "\n"


def write(res: dict, path: Path = RESULTS_MD) -> Path:
    path.write_text(Report(res).render(), encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write(json.loads((OUT / "results.json").read_text())))
