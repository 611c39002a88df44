"""FinOps through the live app (Ray + Serve + simulator), one app for the module: a one-cent key
budget under 100 concurrent requests, keys stored as digests, per-user report scoping, and the
crash test (the Ledger actor killed during a burst: every request the simulator saw has exactly
one ledger row, and the totals are bracketed by the simulator's count)."""
from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time

import httpx
import pytest
import ray

from runtime.config import load_config
from tests.e2e.conftest import auth_headers, live_switchboard, settle_ledger

pytestmark = pytest.mark.e2e
CATALOG = load_config().catalog()
NANO = 1e9


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    with live_switchboard(tmp_path_factory.mktemp("finops"), serve_port) as running:
        yield running


def db(app) -> sqlite3.Connection:
    return sqlite3.connect(app.settings.data_dir / "ledger.sqlite3")


def sim(app, method: str, path: str):
    r = httpx.request(method, f"{app.simulator.url}{path}", trust_env=False, timeout=10)
    r.raise_for_status()
    return r.json()


def new_key(app, user_id: str, **fields) -> dict:
    r = httpx.post(f"{app.url}/api/keys", json={"user_id": user_id, **fields}, headers=auth_headers(),
                   trust_env=False, timeout=30)
    assert r.status_code == 201, r.text
    return r.json()


async def burst(app, key: str, n: int, concurrency: int, on_done=None) -> list[httpx.Response]:
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(client: httpx.AsyncClient, i: int) -> httpx.Response:
        nonlocal done
        async with limit:
            r = await client.post("/api/ai/route", json={
                "query": f"burst question {i}: name a prime", "use_case": "bulk", "max_tokens": 1000,
                "cache": "off"}, headers={"authorization": f"Bearer {key}"})
        done += 1
        if on_done is not None:
            await on_done(done)
        return r

    async with httpx.AsyncClient(base_url=app.url, trust_env=False, timeout=60) as client:
        return list(await asyncio.gather(*(one(client, i) for i in range(n))))


def test_100_concurrent_requests_never_overspend_a_one_cent_key_and_the_key_is_only_a_digest(app):
    made = new_key(app, "penny", daily_budget_usd=0.01)
    sim(app, "POST", "/_sim/reset")
    responses = asyncio.run(burst(app, made["key"], 100, 100))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(ok) + len(refused) == 100 and ok and refused, [r.status_code for r in responses]
    assert {r.json()["error"]["budget"] for r in refused} == {f"key:{made['key_id']}:daily"}
    settle_ledger(app)
    with db(app) as conn:
        spent, pending = conn.execute(
            "SELECT COALESCE(SUM(estimated_cost), 0), COALESCE(SUM(status = 'pending'), 0) "
            "FROM agent_token_usage WHERE key_id = ?", (made["key_id"],)).fetchone()
    assert pending == 0 and 0 < spent <= 0.01 * NANO
    with db(app) as conn:  # admitted by the replica against allowances: a few grants, not 100 admissions
        grants, drawn_by, under = conn.execute(
            "SELECT (SELECT COUNT(*) FROM allowances WHERE key_id = ?), COUNT(DISTINCT allowance_id), COUNT(*) "
            "FROM agent_token_usage WHERE key_id = ? AND allowance_id IS NOT NULL",
            (made["key_id"], made["key_id"])).fetchone()
    assert under == len(ok) and 0 < drawn_by <= grants < len(ok), (grants, drawn_by, under, len(ok))
    assert len(sim(app, "GET", "/_sim/requests")["requests"]) == len(ok)  # refused: never upstream
    stored = b"".join(p.read_bytes() for p in app.settings.data_dir.glob("ledger.sqlite3*"))
    assert made["key"].encode() not in stored
    other = httpx.get(f"{app.url}/api/ai/costs/by-user/someone-else", trust_env=False,
                      headers={"authorization": f"Bearer {made['key']}"})
    assert other.status_code == 403


def wait_restarted(actor, timeout_s: float = 60.0) -> None:
    """Until a restarting actor answers (Ray refuses calls at once while it restarts)."""
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            ray.get(actor.__ray_ready__.remote(), timeout=timeout_s)
            return
        except ray.exceptions.ActorUnavailableError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.2)  # a readiness poll of a real restart, as wait_healthy does


def test_killing_the_ledger_during_a_burst_leaves_exactly_one_row_per_upstream_request(app):
    made = new_key(app, "crash")
    ledger = app.actors["ledger"]
    pid_before = ray.get(ledger.__ray_call__.remote(lambda actor: os.getpid()))
    sim(app, "POST", "/_sim/reset")
    rng = random.Random(6)
    kill_at = set(rng.sample(range(10, 490), 3))  # after these many finished requests

    async def maybe_kill(done: int) -> None:
        if done in kill_at:
            ray.kill(ledger, no_restart=False)

    responses = asyncio.run(burst(app, made["key"], 500, 20, maybe_kill))
    statuses = {r.status_code for r in responses}
    assert statuses <= {200, 503}, statuses
    assert sum(r.status_code == 200 for r in responses) >= 250

    wait_restarted(ledger)  # the burst no longer waits for the ledger: it may still be restarting
    assert ray.get(ledger.__ray_call__.remote(lambda actor: os.getpid())) != pid_before  # it was killed
    settle_ledger(app)
    ray.get(ledger.recover.remote(0.0), timeout=60)  # nothing is in flight: settle leftovers
    seen = [r for r in sim(app, "GET", "/_sim/requests")["requests"]]
    assert seen and all(r["request_id"] for r in seen)
    sim_cost = sum(
        CATALOG.get(r["platform"], r["model"]).cost_usd(r["input_tokens"], r["output_tokens"])
        for r in seen if r["status"] == 200
    )
    with db(app) as conn:
        rows = dict(conn.execute(
            "SELECT request_id, status FROM agent_token_usage WHERE key_id = ?", (made["key_id"],)).fetchall())
        total, unknown_reserved = conn.execute(
            "SELECT COALESCE(SUM(estimated_cost), 0), "
            "COALESCE(SUM(CASE WHEN status = 'unknown' THEN reserved_cost ELSE 0 END), 0) "
            "FROM agent_token_usage WHERE key_id = ?", (made["key_id"],)).fetchone()
    missing = {r["request_id"] for r in seen} - set(rows)
    assert not missing, f"{len(missing)} upstream requests have no ledger row"
    assert "pending" not in rows.values()
    eps = len(rows) / NANO  # rounding to whole nano-dollars per row
    assert sim_cost - eps <= total / NANO <= sim_cost + unknown_reserved / NANO + eps
