"""Load from a separate process: `wrk` (C, event loop, installed from Debian when missing) with a
Lua script that POSTs a fixed JSON body and prints its summary as one JSON line."""
from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from bench.procs import OUT

WRK_MARK = "WRKJSON "

LUA = """\
wrk.method = "POST"
wrk.body = {body}
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{mark}{{"requests":%d,"duration_us":%d,"status_errors":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50":%d,"p90":%d,"p95":%d,"p99":%d,"max":%d,"mean":%f}}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class LoadResult:
    """One closed-loop run at a fixed concurrency; latencies in ms."""

    target: str
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    rps: float
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    mean: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 1.0

    def as_dict(self) -> dict:
        return {**asdict(self), "error_rate": self.error_rate}


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                   env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
    path = shutil.which("wrk")
    if not path:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return path


def lua_string(text: str) -> str:
    """A Lua long-bracket literal that cannot be closed by the text itself."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def write_script(name: str, body: dict, headers: Mapping[str, str]) -> Path:
    lines = [f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}" for k, v in
             {"Content-Type": "application/json", **headers}.items()]
    path = OUT / f"wrk-{name}.lua"
    path.write_text(LUA.format(body=lua_string(json.dumps(body)), headers="\n".join(lines),
                               mark=WRK_MARK), encoding="utf-8")
    return path


def parse_wrk(stdout: str, target: str, concurrency: int) -> LoadResult:
    line = next((l for l in stdout.splitlines() if l.startswith(WRK_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{stdout[-2000:]}")
    s = json.loads(line[len(WRK_MARK):])
    errors = s["status_errors"] + s["connect"] + s["read"] + s["write"] + s["timeout"]
    duration_s = s["duration_us"] / 1e6
    ok = max(s["requests"] - s["status_errors"], 0)
    ms = lambda us: round(us / 1000.0, 3)  # noqa: E731
    return LoadResult(
        target=target, concurrency=concurrency, requests=s["requests"] + s["timeout"] + s["connect"],
        errors=errors, duration_s=round(duration_s, 3), rps=round(ok / duration_s, 1) if duration_s else 0.0,
        p50=ms(s["p50"]), p90=ms(s["p90"]), p95=ms(s["p95"]), p99=ms(s["p99"]), max=ms(s["max"]),
        mean=ms(s["mean"]),
    )


def run_wrk(target: str, url: str, body: dict, headers: Mapping[str, str], concurrency: int,
            duration_s: float, timeout_s: float = 10.0) -> LoadResult:
    """Closed loop: `concurrency` connections, each sending the next request on the answer."""
    script = write_script(target, body, headers)
    cmd = [ensure_wrk(), "-t", "1", "-c", str(concurrency), "-d", f"{duration_s:g}s",
           "--timeout", f"{timeout_s:g}s", "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + timeout_s + 30)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-2000:]}")
    return parse_wrk(out.stdout, target, concurrency)


def sweep(target: str, url: str, body: dict, headers: Mapping[str, str], concurrencies: list[int],
          duration_s: float, warmup_s: float = 2.0) -> list[LoadResult]:
    """A short warm-up at the highest concurrency, then one run per concurrency."""
    if warmup_s > 0:
        run_wrk(target + "-warmup", url, body, headers, min(max(concurrencies), 16), warmup_s)
    return [run_wrk(target, url, body, headers, c, duration_s) for c in concurrencies]


def max_sustained(results: list[LoadResult], max_error_rate: float = 0.01) -> LoadResult | None:
    """The highest-throughput run whose error rate is below `max_error_rate`."""
    good = [r for r in results if r.error_rate < max_error_rate]
    return max(good, key=lambda r: r.rps) if good else None
