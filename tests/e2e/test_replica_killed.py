"""Issue 15, "What must be shown": an ingress replica killed while it holds leases.

Two replicas (`server.replicas: 2`) share an rpm-20 model in 3 s windows under closed-loop
callers; once both hold slices of it, one replica's process gets SIGKILL. Then: the upstream
never saw more than 20 calls in any window (nor answered 429); the ProviderActor forgets the dead
holder once its slices expired, and the model keeps serving; the dead replica's journal is
adopted (no segment of it is left); every call the upstream saw has exactly one ledger row,
none left pending (the killed replica's in-flight calls settled `unknown` at their reservation
after `request_timeout_s`, as after any crash), and upstream cost <= ledger total <= that plus
those reservations.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from runtime.config import load_config
from runtime.simulator_process import SimulatorProcess
from tests.e2e import ledger_checks
from tests.e2e.conftest import auth_headers, live_switchboard
from tests.ray.protection_helpers import max_in_any_window, write_test_config

pytestmark = pytest.mark.e2e

WINDOW_S = 3.0
RPM = 20
HEAD = ("openai", "gpt-4o-mini")
REQUEST_TIMEOUT_S = 3.0
REPLICA_TITLE = "ServeReplica:switchboard:gateway"


def replica_pids() -> set[int]:
    """Live processes titled as the app's gateway replicas (Ray's setproctitle)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if REPLICA_TITLE in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def holder_pid(holder: str) -> int:
    return int(holder.split(":")[1])  # providers/leases.holder_name: host:pid:nonce


def eventually(condition, timeout_s: float, what: str, every_s: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll `condition` (waiting on other processes, not timing a behaviour) until truthy."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def setup(serve_port, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("replica-killed")
    path = write_test_config(tmp / "switchboard.yaml", window_scale=WINDOW_S / 60.0, tight_rpm={HEAD: RPM})
    raw = yaml.safe_load(path.read_text())
    raw["server"].update(replicas=2, request_timeout_s=REQUEST_TIMEOUT_S)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    sim = SimulatorProcess.start(latency_scale=0.0, config_path=str(path), extra_args=(
        "--fixed-latency-ms", "40", "--window-s", str(WINDOW_S), "--seed", "11"))
    env = {}
    for provider in load_config(path).providers.values():  # every platform at this simulator
        env[provider.base_url_env] = sim.url + urlsplit(provider.base_url).path
        env[provider.api_key_env] = "sim-replica-kill-key"
    try:
        with live_switchboard(tmp / "var", serve_port, env=env, config_path=path) as app:
            yield app, sim
    finally:
        sim.stop()


def head_status(app) -> dict:  # type: ignore[no-untyped-def]
    import ray

    return ray.get(app.actors[f"provider:{HEAD[0]}"].status.remote(), timeout=30)["models"][HEAD[1]]


async def load(url: str, callers: int, stop: asyncio.Event, statuses: list[int]) -> None:
    async def caller(client: httpx.AsyncClient, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                r = await client.post(f"{url}/v1/chat/completions", json={
                    "model": HEAD[1], "cache": "off", "max_tokens": 16,
                    "messages": [{"role": "user", "content": f"caller {n} request {i}"}]})
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(0)  # the killed replica's connection
            if statuses[-1] != 200:
                await asyncio.sleep(0.05)  # refused: back off a little (load shape, not a wait)

    async with httpx.AsyncClient(headers=auth_headers(), timeout=30, trust_env=False) as client:
        await asyncio.gather(*(caller(client, n) for n in range(callers)))


def test_a_replica_killed_holding_leases_exceeds_no_limit_and_loses_no_row(setup):
    app, sim = setup
    httpx.post(f"{sim.url}/_sim/reset", trust_env=False).raise_for_status()
    statuses: list[int] = []
    observed: dict = {}

    async def scenario() -> None:
        stop = asyncio.Event()
        traffic = asyncio.create_task(load(app.url, 24, stop, statuses))
        try:
            await asyncio.to_thread(_kill_one_holder_and_watch, app, observed)
        finally:
            stop.set()
            await traffic

    asyncio.run(scenario())

    head = [r for r in httpx.get(f"{sim.url}/_sim/requests", trust_env=False).json()["requests"]
            if (r["platform"], r["model"]) == HEAD]
    times = [r["t"] for r in head]
    after_forgotten = [t for t in times if t >= observed["forgotten_at"]]
    print(f"\nreplica kill: {len(statuses)} answers {sorted(set(statuses))}, upstream {len(head)} calls, "
          f"most in a window {max_in_any_window(times, WINDOW_S)}, {len(after_forgotten)} after the dead "
          f"holder was forgotten")
    assert [r for r in head if r["status"] != 200] == []  # never a 429 upstream
    assert max_in_any_window(times, WINDOW_S) <= RPM
    assert len(after_forgotten) >= 1 and set(statuses) <= {0, 200, 429, 500, 502, 503, 504}
    _assert_ledger_settled(app, head)


def two(pids: set[int]) -> set[int] | None:
    return pids if len(pids) == 2 else None


def holding_replicas(app, replicas: set[int]) -> set[int]:  # type: ignore[no-untyped-def]
    """Which of `replicas` have slices of the head model out right now."""
    return {holder_pid(h) for h in head_status(app)["leased"]["holders"]} & replicas


def _kill_one_holder_and_watch(app, observed: dict) -> None:  # type: ignore[no-untyped-def]
    replicas = eventually(lambda: two(replica_pids()), 60, "two replicas")
    eventually(lambda: holding_replicas(app, replicas) == replicas, 30,
               "both replicas to hold slices of the head model", every_s=0.01)
    victim = min(replicas)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    observed.update(victim=victim)
    eventually(lambda: victim not in holding_replicas(app, {victim}), 30, "the dead replica's loans to be forgotten")
    observed["forgotten_at"] = time.time()
    assert observed["forgotten_at"] - killed_at < 4 * WINDOW_S
    # Serve replaces the replica; the replacement adopts the dead one's journal before serving
    # and leases slices of its own
    survivors = eventually(lambda: two(replica_pids() - {victim}), 120, "Serve's replacement replica", every_s=0.5)
    eventually(lambda: not any(f":{victim}:" in p.name for p in (app.settings.data_dir / "journal").iterdir()),
               60, "the dead replica's journal to be adopted", every_s=0.2)
    eventually(lambda: holding_replicas(app, survivors) == survivors, 60,
               "both live replicas to hold slices", every_s=0.01)


def _assert_ledger_settled(app, head: list[dict]) -> None:  # type: ignore[no-untyped-def]
    import ray

    ids = [r["request_id"] for r in head]
    assert len(set(ids)) == len(ids)  # one upstream call per request id: no double charge
    db = app.settings.data_dir / "ledger.sqlite3"

    def settled() -> dict[str, str] | None:
        ray.get(app.actors["ledger"].recover.remote(REQUEST_TIMEOUT_S), timeout=30)  # as its own timer would
        found = ledger_checks.statuses(db, ids)
        return found if len(found) == len(ids) and "pending" not in found.values() else None

    found = eventually(settled, 60, "every upstream call's ledger row to be final", every_s=0.5)
    assert set(found.values()) <= {"ok", "unknown"}
    catalog = app.config.catalog()
    upstream_cost = sum(catalog.get(*HEAD).cost_usd(r["input_tokens"], r["output_tokens"]) for r in head)
    print(f"ledger: {len(found)} rows, {list(found.values()).count('unknown')} unknown")
    ledger_checks.assert_charges_cover(db, ids, upstream_cost)
