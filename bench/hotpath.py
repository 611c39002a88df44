"""The hot path (issue 15): against an instant OpenAI-compatible upstream (bench/instant_upstream.py),
cache off, the admin key (no budgets), no Idempotency-Key, side by side in one run:

- the upstream called directly;
- the forwarding floor: a Serve app in the same proxy mode whose one handler forwards the body
  with aiohttp (bench/floor_app.py);
- Switchboard before (a git worktree at `--before`, default the last commit before leases) and
  after (this tree), in Serve's haproxy (throughput-optimized) mode, one ingress replica;
- LiteLLM's proxy on the same upstream (when installed: `make bench` installs it).

Each row: req/s, p50/p99, added p50/p99 over the direct call, CPU ms per request of the whole
serving process tree and of each ProviderActor and the LedgerActor (the processes that should
do no per-request work). Then two ingress replicas against an rpm=20 model under 200
concurrent callers: the most calls the upstream saw in any window.

    .venv/bin/python -m bench.hotpath [--duration 6] [--before 0113eec] [--no-litellm] [--soak 100000]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench import hotpath_report, overhead, profile
from bench.bench_config import bench_config_data
from bench.loadgen import ensure_wrk
from bench.procs import LOOPBACK, OUT, ROOT, Child, clean_env, spawn, wait_http
from bench.switchboard_proc import MODES, Upstreams, auth, start_switchboard
from bench.sysinfo import conditions, cpu_seconds, descendants, find_in_tree, loadavg, process_title
from runtime.simulator_process import free_port

CONCURRENCIES = [1, 32, 64]
MODE = "haproxy"
#: the processes that should do no per-request work, by Ray process title
QUIET_ROLES = {"provider actors": "ProviderActor", "ledger actor": "LedgerActor"}
BEFORE_REF = "0113eec"  # the last commit before admission by lease
EXACT_RPM = 20
EXACT_SCALE = 0.1  # 6 s windows for the exactness check


def start_instant() -> Child:
    port = free_port()
    child = spawn("instant-upstream", [sys.executable, "-m", "bench.instant_upstream", "--port", str(port)],
                  f"http://{LOOPBACK}:{port}")
    _wait_post(child, "/v1/chat/completions")
    return child


def start_floor(upstream: Child) -> Child:
    port = free_port()
    env = clean_env(**MODES[MODE])
    child = spawn("floor", [sys.executable, "-m", "bench.floor_app", "--port", str(port),
                            "--upstream", upstream.url + "/v1"], f"http://{LOOPBACK}:{port}", env)
    wait_http(child, "/healthz", 180)
    return child


def _wait_post(child: Child, path: str, timeout_s: float = 30.0) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        try:
            if httpx.post(child.url + path, json={}, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not answering: {child.log_tail()}")


def role_cpu(root: int) -> dict[str, dict[int, float]]:
    return {role: cpu_seconds(find_in_tree(root, needle)) for role, needle in QUIET_ROLES.items()}


def measure(target: str, url: str, headers: dict[str, str], root: int | None, duration_s: float,
            body: dict) -> list[dict]:
    """overhead.measure, plus each quiet role's CPU ms per request at each concurrency, net of
    what that role burns idle (Ray's own housekeeping in every actor, measured first)."""
    idle = _role_idle(root) if root else {}
    rows = []
    for c in CONCURRENCIES:
        before = role_cpu(root) if root else {}
        row = overhead.measure(target, url, body, headers, [c], duration_s, root, warmup_s=2.0 if c == 1 else 0.0)[0]
        if root:
            after = role_cpu(root)
            ok = max(row["requests"] - row["errors"], 1)
            row["role_cpu_ms_per_request"] = {
                role: round(max(_spent(before[role], after[role]) - idle[role] * row["duration_s"], 0.0) * 1000.0 / ok, 4)
                for role in QUIET_ROLES}
            row["role_idle_cores"] = {role: round(idle[role], 4) for role in QUIET_ROLES}
        rows.append(row)
    return rows


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def _role_idle(root: int, seconds: float = 3.0) -> dict[str, float]:
    """CPU cores each quiet role burns with no load."""
    before = role_cpu(root)
    time.sleep(seconds)  # a rate over a wall-clock interval, not a wait for an event
    after = role_cpu(root)
    return {role: _spent(before[role], after[role]) / seconds for role in QUIET_ROLES}


def rss_by_process(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (short title, resident set in KiB) for every process of the tree."""
    out = {}
    for pid in descendants(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        rss = next((int(l.split()[1]) for l in status.splitlines() if l.startswith("VmRSS:")), None)
        if rss is not None:
            out[pid] = (process_title(pid).split(" ")[0][:60], rss)
    return out


def soak(upstream: Child, config: Path, requests: int) -> dict:
    """Sustained load of >= `requests` requests at c=32 after a warm-up: each process's RSS after
    the warm-up and at the end (the target: every one within 10%)."""
    sb = switchboard(upstream, config, ROOT, "-soak")
    try:
        url = f"{sb.url}/v1/chat/completions"
        body = overhead.chat_body(cache="off")
        warm = overhead.measure("soak-warmup", url, body, auth(), [32], 10.0, None, warmup_s=0)[0]
        before = rss_by_process(sb.process.pid)
        duration_s = float(max(30, round(1.4 * requests / max(warm["rps"], 1.0))))  # wrk takes whole seconds; the rate sags
        row = overhead.measure("soak", url, body, auth(), [32], duration_s, sb.process.pid, warmup_s=0)[0]
        after = rss_by_process(sb.process.pid)
        procs = []
        for pid, (title, kib) in sorted(before.items()):
            if pid in after and kib >= 20_000:  # the Python processes, not the shims
                grown = after[pid][1] / kib - 1.0
                procs.append({"process": title, "pid": pid, "rss_mib_after_warmup": round(kib / 1024, 1),
                              "rss_mib_at_end": round(after[pid][1] / 1024, 1), "growth": round(grown, 4)})
        return {"requests": row["requests"], "errors": row["errors"], "rps": row["rps"],
                "duration_s": row["duration_s"], "processes": procs,
                "worst_growth": max((p["growth"] for p in procs), default=None)}
    finally:
        sb.stop()


def before_tree(ref: str) -> Path:
    """A git worktree of `ref` (made once, reused)."""
    path = OUT / f"worktree-{ref}"
    if not (path / "runtime").exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
                       capture_output=True)
    return path


def switchboard(upstream: Child, config: Path, root: Path, tag: str, replicas: int = 1) -> Child:
    return start_switchboard(Upstreams({p: upstream.url for p in ("openai", "anthropic", "groq", "gemini", "openrouter")}),
                             config, mode=MODE, replicas=replicas, tag=tag, root=root)


def write_config(name: str, source: Path | None = None, **protection: Any) -> Path:
    """The bench's config from `source` (default: this tree's switchboard.yaml; the before
    tree's own, whose strict schema may not know this tree's newer fields)."""
    data = bench_config_data(source) if source is not None else bench_config_data()
    data.setdefault("protection", {}).update(protection)
    path = OUT / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def exactness(upstream: Child, duration_s: float) -> dict:
    """Two ingress replicas, 200 concurrent callers, a model at rpm=20 in 6 s windows: the most
    calls the upstream saw in any window (must be <= 20)."""
    data = bench_config_data(window_scale=EXACT_SCALE)
    for model in data["models"]:
        if (model["platform"], model["id"]) == ("openai", "gpt-4o"):
            model.update(rpm=EXACT_RPM, tpm=None, rpd=None)
    config = OUT / "exactness.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    sb = switchboard(upstream, config, ROOT, "-exact", replicas=2)
    try:
        httpx.post(upstream.url + "/_arrivals/reset", timeout=5, trust_env=False)
        window_s = 60.0 * EXACT_SCALE
        counts = asyncio.run(_callers(sb.url, 200, 3 * window_s))
        arrivals = httpx.get(upstream.url + "/_arrivals", timeout=5, trust_env=False).json()["arrivals"]
        most = max((sum(1 for u in arrivals if t <= u < t + window_s) for t in arrivals), default=0)
        return {"replicas": 2, "callers": 200, "rpm": EXACT_RPM, "window_s": window_s,
                "duration_s": round(3 * window_s, 1), "upstream_calls": len(arrivals),
                "most_in_any_window": most, "statuses": counts}
    finally:
        sb.stop()


async def _callers(url: str, n: int, seconds: float) -> dict[str, int]:
    """`n` closed-loop callers on their own connections (so the proxy spreads them over both
    replicas) for `seconds`; the status codes they saw."""
    body = overhead.chat_body(cache="off", deadline_ms=3000)  # refused soon, not queued for minutes
    counts: dict[str, int] = {}
    stop_at = time.monotonic() + seconds

    async def caller() -> None:
        async with httpx.AsyncClient(base_url=url, headers=auth(), timeout=30, trust_env=False) as client:
            while time.monotonic() < stop_at:
                try:
                    status = str((await client.post("/v1/chat/completions", json=body)).status_code)
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                counts[status] = counts.get(status, 0) + 1
                if status != "200":
                    await asyncio.sleep(0.2)  # a refused caller comes back later, not in a hot loop

    await asyncio.gather(*(caller() for _ in range(n)))
    return counts


def run_phase(res: dict, key: str, fn) -> None:  # type: ignore[no-untyped-def]
    """One measurement; its failure is recorded, the others still run."""
    print(f"[hotpath] {key} ...", flush=True)
    try:
        res[key] = fn()
    except Exception as exc:  # noqa: BLE001
        res[key] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
    (OUT / "hotpath.json").write_text(json.dumps(res, indent=1, default=str))


def run(duration_s: float, before_ref: str | None, litellm: bool, exact: bool = True,
        soak_requests: int = 0, only: set[str] | None = None) -> dict:
    """Every phase, or with `only` just those, added to the last run's results."""
    ensure_wrk()
    last = OUT / "hotpath.json"
    res: dict[str, Any] = json.loads(last.read_text()) if only and last.exists() else {}
    res.update({"conditions": res.get("conditions") or conditions(), "duration_s": duration_s, "mode": MODE,
                "concurrencies": CONCURRENCIES, "before_ref": before_ref})
    if only:
        res.setdefault("rerun", []).append(sorted(only))

    def phase(res: dict, key: str, fn) -> None:  # type: ignore[no-untyped-def]
        if only is None or key in only:
            run_phase(res, key, fn)

    body = overhead.chat_body(cache="off")
    upstream = start_instant()
    url_of = lambda child: f"{child.url}/v1/chat/completions"  # noqa: E731
    try:
        phase(res, "direct", lambda: measure("direct", url_of(upstream), {}, None, duration_s, overhead.chat_body()))
        phase(res, "floor", lambda: _on(start_floor(upstream), lambda floor: measure(
            "floor", url_of(floor), {}, floor.process.pid, duration_s, overhead.chat_body())))
        config = write_config("hotpath")
        trees = ([("before", lambda: before_tree(before_ref))] if before_ref else []) + [("after", lambda: ROOT)]
        for label, tree in trees:
            phase(res, f"switchboard_{label}", lambda label=label, tree=tree: _on(
                switchboard(upstream, write_config(f"hotpath-{label}", tree() / "switchboard.yaml"), tree(), f"-{label}"),
                lambda sb: _measure_switchboard(sb, label, duration_s, body)))
        phase(res, "switchboard_budgeted", lambda: _on(
            switchboard(upstream, write_config("hotpath-budgeted"), ROOT, "-budgeted"),
            lambda sb: {"rows": measure("sb-budgeted", f"{sb.url}/v1/chat/completions", budgeted_key(sb),
                                        sb.process.pid, duration_s, body)}))
        if litellm:
            phase(res, "litellm_proxy", lambda: _litellm(upstream, duration_s))
        if exact:
            phase(res, "exactness", lambda: exactness(upstream, duration_s))
        if soak_requests:
            phase(res, "soak", lambda: soak(upstream, config, soak_requests))
        phase(res, "ledger_ids", ledger_ids)
    finally:
        upstream.stop()
    res["loadavg_at_end"] = [round(x, 2) for x in loadavg()]
    return res


def _measure_switchboard(sb: Child, label: str, duration_s: float, body: dict) -> dict:
    out: dict[str, Any] = {"rows": measure(f"sb-{label}", f"{sb.url}/v1/chat/completions", auth(), sb.process.pid,
                                           duration_s, body)}
    if label == "after":  # where the replica's CPU goes at full load
        out["profile"] = profile.profile(sb.process.pid, f"{sb.url}/v1/chat/completions", body, auth(),
                                         duration_s=8, concurrency=32, roles=("replica",))
    return out


def ledger_ids() -> dict:
    """The ledger's CPU per final row with random and with time-ordered request ids."""
    import tempfile

    from bench import ledger_bench

    with tempfile.TemporaryDirectory(prefix="hotpath-ledger-") as tmp:
        return {"rows": ledger_bench.bench_id_kinds(tmp, prefill=100_000, batch=128)}


def budgeted_key(sb: Child) -> dict[str, str]:
    """A new key with a daily budget no request reaches: each request is admitted by the ledger
    against it (a batched, awaited hop and its commit), none is refused."""
    resp = httpx.post(f"{sb.url}/api/keys", headers=auth(), timeout=30,
                      json={"user_id": "bench-budgeted", "daily_budget_usd": 1_000_000})
    resp.raise_for_status()
    return {"authorization": f"Bearer {resp.json()['key']}"}


def _on(child: Child, fn):  # type: ignore[no-untyped-def]
    try:
        return fn(child)
    finally:
        child.stop()


def _litellm(upstream: Child, duration_s: float) -> dict:
    try:
        from bench import litellm_side

        proxy = litellm_side.start_proxy(upstream.url)
    except Exception as exc:  # noqa: BLE001 - not installed: say so in the results
        return {"error": f"{type(exc).__name__}: {exc}"}
    try:
        rows = measure("litellm-proxy", f"{proxy.url}/v1/chat/completions",
                       {"Authorization": f"Bearer {litellm_side.MASTER_KEY}"}, proxy.process.pid, duration_s,
                       overhead.chat_body())
        return {"version": litellm_side.version(), "rows": rows}
    finally:
        proxy.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hotpath", description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--before", default=BEFORE_REF, help="git ref of the 'before' Switchboard ('' to skip)")
    p.add_argument("--no-litellm", action="store_true")
    p.add_argument("--no-exactness", action="store_true")
    p.add_argument("--soak", type=int, default=0, help="requests of the memory soak (0: none; the target is 100000)")
    p.add_argument("--only", default="", help="comma-separated result keys to (re)run, e.g. soak,exactness")
    args = p.parse_args(argv)
    only = {k.strip() for k in args.only.split(",") if k.strip()} or None
    res = run(args.duration, args.before or None, not args.no_litellm, not args.no_exactness, args.soak, only)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "hotpath.json").write_text(json.dumps(res, indent=1, default=str))
    hotpath_report.write(res)
    print(hotpath_report.markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
