"""Issue 6, the whole app killed: SIGKILL to `switchboard serve`'s process group (the driver and
its private Ray cluster: Serve, every actor, the ledger) at a random moment during a burst of
500 requests, then a restart on the same data dir. Every request the simulator saw has exactly
one ledger row, and simulator-counted cost <= ledger total <= that + the reservations of the
rows recovered as `unknown`."""
from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from providers.settings import DEFAULT_CONFIG_PATH
from runtime.config import load_config
from runtime.simulator_process import SimulatorProcess, free_port
from tests.e2e import ledger_checks
from tests.e2e.conftest import wait_healthy

pytestmark = pytest.mark.e2e
ADMIN = "sk-sb-crash-" + uuid.uuid4().hex
CATALOG = load_config().catalog()
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim():
    s = SimulatorProcess.start(latency_scale=0.0, extra_args=("--fixed-latency-ms", "20", "--no-limits"))
    yield s
    s.stop()


def app_env(sim_url: str, data_dir: Path, port: int, config_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    for p in load_config().providers.values():  # every platform at the external simulator
        env[p.base_url_env] = sim_url + urlsplit(p.base_url).path
        env[p.api_key_env] = "sim-crash-test-key"
    env.update(SWITCHBOARD_PORT=str(port), SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_ADMIN_KEY=ADMIN,
               SWITCHBOARD_CONFIG=str(config_path), SWITCHBOARD_PROXY="serve")
    return env


def start_app(env: dict[str, str], log) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli.main", "serve", "--latency-scale", "0"],
                            env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{env['SWITCHBOARD_PORT']}"
    wait_healthy(url, attempts=900)
    return proc, url


async def burst(url: str, n: int, concurrency: int, kill_after: int, kill) -> int:
    """`n` requests, `concurrency` at a time; the app is killed when `kill_after` have answered.
    Requests not yet sent by then are not sent: Ray's workers outlive the driver by a few hundred
    milliseconds, and on an idle machine they would otherwise answer the whole rest of the burst
    before they die (the crash would not be mid-burst)."""
    done, sem, killed = 0, asyncio.Semaphore(concurrency), False

    async def one(i: int, client: httpx.AsyncClient) -> None:
        nonlocal done, killed
        async with sem:
            if killed:
                done += 1
                return
            try:
                await client.post(f"{url}/v1/chat/completions", json={
                    "model": "gpt-4o", "cache": "off", "max_tokens": 20,
                    "messages": [{"role": "user", "content": f"crash test {i}"}]})
            except httpx.HTTPError:
                pass  # the app is gone: expected after the kill
            done += 1
            if done == kill_after:
                killed = True
                kill()

    headers = {"authorization": f"Bearer {ADMIN}"}
    async with httpx.AsyncClient(headers=headers, timeout=30, trust_env=False) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return done


def test_killing_the_whole_app_mid_burst_loses_no_row(sim, tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["server"]["request_timeout_s"] = 5  # rows pending longer than this are recovered at restart
    config_path = tmp_path / "crash.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    data_dir = tmp_path / "var"
    log = (tmp_path / "app.log").open("w")
    proc, url = start_app(app_env(sim.url, data_dir, free_port(), config_path), log)
    try:
        kill_after = random.Random(7).randrange(100, 400)
        asyncio.run(burst(url, 500, 20, kill_after, lambda: os.killpg(proc.pid, signal.SIGKILL)))
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    seen = httpx.get(f"{sim.url}/_sim/requests", trust_env=False).json()["requests"]
    assert 100 <= len(seen) < 500 and all(r["request_id"] for r in seen)

    proc, url = start_app(app_env(sim.url, data_dir, free_port(), config_path), log)
    try:  # the restarted ledger recovers stale pending rows on its first call
        r = httpx.post(f"{url}/api/ai/route", json={"query": "after the crash", "cache": "off"},
                       headers={"authorization": f"Bearer {ADMIN}"}, timeout=30, trust_env=False)
        assert r.status_code == 200, r.text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(90)
        log.close()

    ids = [r["request_id"] for r in seen]
    rows = ledger_checks.statuses(data_dir / "ledger.sqlite3", ids)
    missing = set(ids) - set(rows)
    assert not missing, f"{len(missing)} upstream requests have no ledger row"
    assert len(set(ids)) == len(ids)  # one upstream request per id: no double charge
    assert "pending" not in rows.values() and set(rows.values()) <= {"ok", "unknown"}
    sim_cost = sum(CATALOG.get(r["platform"], r["model"]).cost_usd(r["input_tokens"], r["output_tokens"])
                   for r in seen if r["status"] == 200)
    ledger_checks.assert_charges_cover(data_dir / "ledger.sqlite3", ids, sim_cost)


def session_processes(sid: int, needle: str) -> list[int]:
    """Live processes of session `sid` whose command line contains `needle`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if needle in cmdline and os.getsid(int(entry.name)) == sid:
                found.append(int(entry.name))
        except (OSError, ProcessLookupError):
            continue
    return found


def test_sigterm_in_haproxy_mode_stops_everything_with_every_row_final(sim, tmp_path):
    """The default `switchboard serve` (HAProxy in front): after a burst, SIGTERM exits 0,
    every final row queued in the replica reached the ledger (none pending), and no HAProxy
    process of the app outlives it (it would hold the port)."""
    env = app_env(sim.url, tmp_path / "var", free_port(), DEFAULT_CONFIG_PATH)
    del env["SWITCHBOARD_PROXY"]
    log = (tmp_path / "app.log").open("w")
    proc, url = start_app(env, log)
    try:
        assert session_processes(proc.pid, "haproxy"), "HAProxy mode did not start an haproxy"
        httpx.post(f"{sim.url}/_sim/reset", trust_env=False).raise_for_status()
        asyncio.run(burst(url, 200, 20, -1, lambda: None))
    finally:
        proc.send_signal(signal.SIGTERM)  # to the driver only, as a process manager would
        try:
            code = proc.wait(120)
            left = session_processes(proc.pid, "haproxy")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its Ray cluster
            log.close()
    assert code == 0, (tmp_path / "app.log").read_text()[-3000:]
    assert left == []

    ids = [r["request_id"] for r in httpx.get(f"{sim.url}/_sim/requests", trust_env=False).json()["requests"]]
    assert len(ids) == 200
    statuses = list(ledger_checks.statuses(tmp_path / "var" / "ledger.sqlite3", ids).values())
    assert sorted(statuses) == ["ok"] * 200
