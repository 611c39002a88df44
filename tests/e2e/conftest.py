"""A live Switchboard (Ray + Serve + simulator) for end-to-end tests, one per module."""
from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.simulator_process import free_port

ADMIN_KEY = "sk-sb-test-admin-" + uuid.uuid4().hex


@pytest.fixture(scope="session")
def serve_port(ray_cluster) -> int:
    return free_port()


@contextlib.contextmanager
def live_switchboard(tmp_path: Path, port: int, env: dict[str, str] | None = None, config_path=None):
    from runtime.app import start
    from runtime.settings import Settings

    settings = Settings(
        host="127.0.0.1",
        port=port,
        data_dir=tmp_path,
        admin_key=ADMIN_KEY,
        config_path=config_path,
        namespace=f"sb-e2e-{uuid.uuid4().hex[:8]}",
    )
    base_env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    app = start(settings, env={**base_env, **(env or {})}, simulator_latency_scale=0.0)
    try:
        wait_healthy(app.url)
        yield app
    finally:
        app.stop()


def wait_healthy(url: str, attempts: int = 200) -> None:
    import time

    last = None
    for _ in range(attempts):
        try:
            last = httpx.get(f"{url}/healthz", timeout=2, trust_env=False)
            if last.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.1)  # waiting for a deployment to come up, not timing a behaviour
    raise RuntimeError(f"Switchboard never became healthy at {url}: {last!r}")


def auth_headers() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN_KEY}"}


def sim_counts(app) -> dict[tuple[str, str], int]:
    """Requests the simulator received, per (platform, model)."""
    stats = httpx.get(f"{app.simulator.url}/_sim/stats", trust_env=False).json()
    return {
        (platform, model): counts["requests"]
        for platform, models in stats["platforms"].items()
        for model, counts in models.items()
    }


def settle_ledger(app) -> None:
    """Every row the gateway has queued is committed. Final rows leave the replica in batches
    after the response (runtime/finops/ledger_client.py); a cost report flushes the replica's queue
    before reading, and these apps run one replica. Then the ledger drains its writer."""
    import ray

    r = httpx.get(f"{app.url}/api/ai/costs/summary", params={"days": 1}, headers=auth_headers(),
                  trust_env=False, timeout=60)
    assert r.status_code == 200, r.text
    ray.get(app.actors["ledger"].drain.remote(), timeout=60)
