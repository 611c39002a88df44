"""The hot-path section of bench/RESULTS.md, from bench/hotpath.json (bench/hotpath.py). It sits
between two markers, so a hot-path run replaces only its own section and a full `make bench`
run (bench/report.py) carries the last one over."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.tables import rows_of as _rows, table

HERE = Path(__file__).resolve().parent
HOTPATH_JSON = HERE / "hotpath.json"
START, END = "<!-- hotpath:start -->", "<!-- hotpath:end -->"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return table(header, rows, nd=2)


TARGETS = (("direct", "upstream, direct"), ("floor", "forwarding floor (Serve + aiohttp)"),
           ("switchboard_before", "Switchboard before"), ("switchboard_after", "Switchboard after"),
           ("switchboard_budgeted", "Switchboard after, a key with a budget"), ("litellm_proxy", "LiteLLM proxy"))


def markdown(res: dict) -> str:
    direct = {r["concurrency"]: r for r in _rows(res.get("direct"))}
    floor = {r["concurrency"]: r for r in _rows(res.get("floor"))}
    rows = []
    for key, label in TARGETS:
        for r in _rows(res.get(key)):
            c, d, f = r["concurrency"], direct.get(r["concurrency"]), floor.get(r["concurrency"])
            roles = r.get("role_cpu_ms_per_request") or {}
            rows.append([
                label, c, r["rps"], r["p50"], r["p99"],
                round(r["p50"] - d["p50"], 2) if d and key != "direct" else None,
                round(r["p99"] - d["p99"], 2) if d and key != "direct" else None,
                f"{r['rps'] / f['rps']:.0%}" if f and f["rps"] and key.startswith("switchboard") else None,
                f"{r['errors']}/{r['requests']}", r.get("cpu_ms_per_request"),
                roles.get("provider actors"), roles.get("ledger actor"), r.get("loadavg_1m"),
            ])
    c = res.get("conditions", {})
    parts = [
        START, "## Hot path: instant upstream, before/after, against the forwarding floor", "",
        f"`python -m bench.hotpath` (issue 15). Upstream: bench/instant_upstream.py (one asyncio protocol, a "
        f"canned completion at once). Serve proxy mode `{res.get('mode')}` for the floor and Switchboard; one "
        f"ingress replica; cache off, the admin key (no budgets; the *key with a budget* rows: a key with a daily "
        f"budget no request reaches, so each request is admitted by the ledger), no Idempotency-Key; wrk closed loop, "
        f"{res.get('duration_s')} s per point (c=1 twice as long). *Before* = a worktree at "
        f"`{res.get('before_ref')}` (every request through the cache, ledger and provider actors); *after* = "
        f"this tree (leases). Added = percentile − the direct call's. Share of floor = req/s ÷ the floor's at "
        f"the same concurrency. CPU ms/req: the serving process tree, net of its idle burn; provider/ledger: "
        f"those actors' own CPU, net of their idle burn (Ray's housekeeping), ÷ requests. {c.get('machine', '')}, load at end {res.get('loadavg_at_end')}.", "",
        _table(["target", "conc.", "req/s", "p50 ms", "p99 ms", "added p50", "added p99", "share of floor",
                "errors", "CPU ms/req", "provider actors ms/req", "ledger ms/req", "load 1m"], rows), "",
    ]
    if res.get("rerun"):
        parts += [f"Phases re-run on top of an earlier run's results (`--only`), in order: "
                  f"{'; '.join(', '.join(r) for r in res['rerun'])}. Rows of one re-run are side by side.", ""]
    parts += _ratios(res)
    ex = res.get("exactness")
    if isinstance(ex, dict) and "most_in_any_window" in ex:
        verdict = "holds" if ex["most_in_any_window"] <= ex["rpm"] else "**VIOLATED**"
        parts += [f"**Exactness across replicas** ({verdict}): {ex['replicas']} ingress replicas, {ex['callers']} "
                  f"concurrent callers for {ex['duration_s']} s on a model at rpm={ex['rpm']} in {ex['window_s']} s "
                  f"windows: the upstream saw {ex['upstream_calls']} calls, at most **{ex['most_in_any_window']}** in "
                  f"any window; statuses {json.dumps(ex['statuses'])}.", ""]
    prof = (res.get("switchboard_after") or {}).get("profile", {}).get("replica") \
        if isinstance(res.get("switchboard_after"), dict) else None
    if prof and prof.get("samples"):
        parts += [f"**py-spy, the Switchboard replica at c=32** ({prof['samples']} samples of the process "
                  f"busy; `bench/profile.py`). By package (self time):", "",
                  _table(["package", "share"], [[x["function"], f"{x['share']:.1%}"] for x in prof["packages"]]), "",
                  "Project functions, inclusive:", "",
                  _table(["function", "share"], [[x["function"], f"{x['share']:.1%}"] for x in prof["inclusive"][:12]]),
                  "", "Top self time:", "",
                  _table(["function", "share"], [[x["function"], f"{x['share']:.1%}"] for x in prof["self"][:10]]), ""]
    ids = (res.get("ledger_ids") or {}).get("rows") if isinstance(res.get("ledger_ids"), dict) else None
    if ids:
        parts += ["**The ledger's CPU per final row by request-id kind** (`bench/ledger_bench.py --id-kinds`: "
                  f"batches of {ids[0]['batch']} final rows into a ledger already holding {ids[0]['prefill']:,}, "
                  f"both kinds alternately, {ids[0]['rounds']} rounds, the median):", "",
                  _table(["request ids", "CPU ms/row", "every round"],
                         [[r["ids"], f"{r['cpu_ms_per_row_median']:.4f}", ", ".join(map(str, r["cpu_ms_per_row_all"]))]
                          for r in ids]), ""]
    soak = res.get("soak")
    if isinstance(soak, dict) and soak.get("processes"):
        worst = soak["worst_growth"]
        parts += [f"**Memory soak**: {soak['requests']:,} requests at c=32 ({soak['rps']} req/s, {soak['errors']} "
                  f"errors) after a 10 s warm-up; worst RSS growth of any process {worst:+.1%} (target: within "
                  f"10%).", "",
                  _table(["process", "RSS MiB after warm-up", "RSS MiB at end", "growth"],
                         [[p["process"], p["rss_mib_after_warmup"], p["rss_mib_at_end"], f"{p['growth']:+.1%}"]
                          for p in soak["processes"]]), ""]
    for key in ("direct", "floor", "switchboard_before", "switchboard_after", "switchboard_budgeted", "exactness",
                "soak", "ledger_ids", "litellm_proxy"):
        value = res.get(key)
        if isinstance(value, dict) and value.get("error") and key != "litellm_proxy":
            parts += [f"**{key} failed**: `{value['error'][:300]}`", ""]
    lite = res.get("litellm_proxy")
    if isinstance(lite, dict) and lite.get("error"):
        parts += [f"LiteLLM proxy not measured: `{lite['error'][:300]}`.", ""]
    parts.append(END)
    return "\n".join(parts)


def _ratios(res: dict) -> list[str]:
    before = {r["concurrency"]: r for r in _rows(res.get("switchboard_before"))}
    after = {r["concurrency"]: r for r in _rows(res.get("switchboard_after"))}
    lite = {r["concurrency"]: r for r in _rows(res.get("litellm_proxy"))}
    lines = []
    for c in sorted(after):
        a = after[c]
        for name, other in (("before", before.get(c)), ("LiteLLM proxy", lite.get(c))):
            if other and other["rps"]:
                lines.append(f"- c={c}: after/{name} req/s ×{a['rps'] / other['rps']:.2f}, "
                             f"p50 {a['p50']:.2f} vs {other['p50']:.2f} ms, p99 {a['p99']:.2f} vs {other['p99']:.2f} ms")
    return (["Ratios, same run:", ""] + lines + [""]) if lines else []


def section() -> str:
    """The last hot-path run's section ('' if none)."""
    return markdown(json.loads(HOTPATH_JSON.read_text())) if HOTPATH_JSON.exists() else ""


def write(res: dict, results_md: Path = HERE / "RESULTS.md") -> None:
    HOTPATH_JSON.write_text(json.dumps(res, indent=1, default=str))
    text = results_md.read_text(encoding="utf-8") if results_md.exists() else "# Benchmark results\n"
    new = markdown(res)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + new + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + new + "\n"
    results_md.write_text(text, encoding="utf-8")
