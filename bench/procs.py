"""Child processes of a benchmark run (simulators, Switchboard, LiteLLM's proxy): started on
loopback ports, waited for over HTTP, stopped by their own pid (process group) only."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import httpx

from runtime.simulator_process import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
OUT = HERE / "out"
LOOPBACK = "127.0.0.1"


@dataclass
class Child:
    """A started process and the URL it answers on; its output goes to a log file."""

    name: str
    process: subprocess.Popen
    url: str
    log_path: Path
    extra: dict = field(default_factory=dict)

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace_s: float = 90.0) -> None:
        """SIGTERM to the child, SIGKILL after `grace_s`; then SIGKILL to whatever is left in its
        process group. Only the child gets the SIGTERM: sent to the whole group it also killed a
        Switchboard's Ray processes under its graceful shutdown, and an orphaned haproxy then
        kept ports 8404/9101 from the next run."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait(5)


def spawn(name: str, cmd: Sequence[str], url: str, env: Mapping[str, str] | None = None,
          cwd: Path = ROOT) -> Child:
    OUT.mkdir(parents=True, exist_ok=True)
    log_path = OUT / f"{name}.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        list(cmd), cwd=cwd, env=dict(env or os.environ), stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )
    return Child(name, proc, url, log_path)


def wait_http(child: Child, path: str, timeout_s: float, headers: Mapping[str, str] | None = None,
              ok: Sequence[int] = (200,)) -> None:
    """Poll `child.url + path` until it answers one of `ok` (a start-up wait, not a measurement)."""
    give_up = time.monotonic() + timeout_s
    last: object = None
    while time.monotonic() < give_up:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited ({child.process.returncode}):\n{child.log_tail()}")
        try:
            r = httpx.get(child.url + path, headers=dict(headers or {}), timeout=2.0, trust_env=False)
            if r.status_code in ok:
                return
            last = f"HTTP {r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.2)
    child.stop()
    raise RuntimeError(f"{child.name} not ready at {child.url}{path} after {timeout_s}s: {last!r}\n"
                       f"{child.log_tail()}")


def start_simulator(name: str, *args: str, config: Path | None = None) -> Child:
    """`python -m providers.simulator` on a free loopback port with the given flags."""
    port = free_port()
    cmd = [sys.executable, "-m", "providers.simulator", "--host", LOOPBACK, "--port", str(port), *args]
    if config is not None:
        cmd += ["--config", str(config)]
    child = spawn(name, cmd, f"http://{LOOPBACK}:{port}")
    wait_http(child, "/_sim/stats", 30)
    return child


def sim_post(sim: Child, path: str, body: dict | None = None) -> dict:
    r = httpx.post(sim.url + path, json=body or {}, timeout=10, trust_env=False)
    r.raise_for_status()
    return r.json()


def sim_stats(sim: Child) -> dict:
    return httpx.get(sim.url + "/_sim/stats", timeout=10, trust_env=False).json()


def wait_for_stop_signal() -> None:
    """Block a child's main thread until SIGINT or SIGTERM (then it shuts down cleanly)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without provider keys/URLs or Serve mode flags, plus `extra`."""
    drop = ("_API_KEY", "_BASE_URL")
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(drop) and not k.startswith("RAY_SERVE_") and k != "REDIS_URL"}
    env.update(extra)
    return env
