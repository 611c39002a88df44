"""Switchboard for a benchmark: `runtime.app.start` in a child process (its own Ray cluster),
every platform pointed at the bench's simulators through <PLATFORM>_BASE_URL/_API_KEY (so it
starts no simulator of its own), in one of Serve's proxy modes, with N ingress replicas.

Child entry point: `python -m bench.switchboard_proc --replicas N` (settings from the env).
"""
from __future__ import annotations

import argparse
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench.procs import LOOPBACK, OUT, ROOT, Child, clean_env, spawn, wait_for_stop_signal, wait_http
from runtime.simulator_process import free_port

ADMIN_KEY = "sk-sb-bench-" + uuid.uuid4().hex
UPSTREAM_KEY = "sim-bench-key"

#: Serve's HTTP proxy modes (env flags read by every Ray process at import)
MODES: dict[str, dict[str, str]] = {
    "default": {},
    "throughput": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"},
    "haproxy": {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"},
}

#: platform -> (base-URL env, path prefix the vendor's SDK base URL has)
UPSTREAM_PATHS = {
    "openai": ("OPENAI", "/v1"),
    "anthropic": ("ANTHROPIC", ""),
    "groq": ("GROQ", "/openai/v1"),
    "gemini": ("GEMINI", ""),
    "openrouter": ("OPENROUTER", "/api/v1"),
}


def auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


@dataclass(frozen=True)
class Upstreams:
    """Which simulator answers each platform (URL without path)."""

    by_platform: dict[str, str]

    def env(self) -> dict[str, str]:
        out = {}
        for platform, url in self.by_platform.items():
            prefix, path = UPSTREAM_PATHS[platform]
            out[f"{prefix}_BASE_URL"] = url.rstrip("/") + path
            out[f"{prefix}_API_KEY"] = UPSTREAM_KEY
        return out


def start_switchboard(upstreams: Upstreams, config: Path, *, mode: str = "default",
                      replicas: int = 1, tag: str = "", root: Path = ROOT) -> Child:
    """`root`: the source tree to run (another checkout, for before/after comparisons)."""
    port = free_port()
    name = f"switchboard-{mode}-r{replicas}{tag}"
    env = clean_env(
        SWITCHBOARD_HOST=LOOPBACK,
        SWITCHBOARD_PORT=str(port),
        SWITCHBOARD_DATA_DIR=str(OUT / f"var-{name}"),
        SWITCHBOARD_ADMIN_KEY=ADMIN_KEY,
        SWITCHBOARD_CONFIG=str(config),
        SWITCHBOARD_NAMESPACE=f"bench-{uuid.uuid4().hex[:8]}",
        **upstreams.env(),
        **MODES[mode],
        PYTHONPATH=str(root),  # ahead of the editable install, in the driver and Ray's workers
    )
    cmd = [sys.executable, "-m", "bench.switchboard_proc", "--replicas", str(replicas)]
    child = spawn(name, cmd, f"http://{LOOPBACK}:{port}", env, cwd=root)
    child.extra.update(mode=mode, replicas=replicas)
    wait_http(child, "/healthz", 180, headers=auth())
    return child


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.switchboard_proc")
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args(argv)

    import runtime.app as app_module
    from runtime.settings import Settings

    # The only difference from `switchboard serve`: the ingress replica count.
    app_module.GatewayDeployment = app_module.GatewayDeployment.options(num_replicas=args.replicas)
    app = app_module.start(Settings.from_env())
    print(f"BENCH READY {app.url}", flush=True)
    wait_for_stop_signal()
    app.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
