"""Run the provider simulator as a child process (the embedded default's upstream)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class SimulatorProcess:
    process: subprocess.Popen
    url: str

    @classmethod
    def start(
        cls,
        port: int | None = None,
        *,
        latency_scale: float = 1.0,
        config_path: str | None = None,
        extra_args: tuple[str, ...] = (),
        ready_timeout_s: float = 20.0,
    ) -> "SimulatorProcess":
        port = port or free_port()
        cmd = [sys.executable, "-m", "providers.simulator", "--host", "127.0.0.1", "--port", str(port),
               "--latency-scale", str(latency_scale), *extra_args]
        if config_path:
            cmd += ["--config", config_path]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        sim = cls(proc, f"http://127.0.0.1:{port}")
        sim.wait_ready(ready_timeout_s)
        return sim

    def wait_ready(self, timeout_s: float) -> None:
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"simulator exited with {self.process.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{self.url}/_sim/stats", timeout=0.5, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # start-up wait for a child process: not a test timing
        self.stop()
        raise RuntimeError(f"simulator did not answer at {self.url} within {timeout_s}s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
