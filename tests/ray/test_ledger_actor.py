"""The Ledger actor on a local Ray cluster: pending → finalize → report across the actor hop,
and a killed actor restarts on the same SQLite file with every committed row (a stale pending
row is settled as 'unknown' by the restarted actor)."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid

import pytest

ray = pytest.importorskip("ray")

from runtime.finops.budget import Admitted, Budget, BudgetExceeded, Scope  # noqa: E402
from runtime.finops.ledger import LedgerActor, ledger_actor_options  # noqa: E402
from runtime.finops.ledger_store import FinalRow, PendingRow  # noqa: E402
from runtime.finops.reports import Summary  # noqa: E402

pytestmark = pytest.mark.ray


@pytest.fixture
def ledger(ray_cluster, tmp_path):
    db_path = str(tmp_path / "ledger.sqlite3")
    name = f"ledger-{uuid.uuid4().hex[:8]}"
    options = {**ledger_actor_options(name), "lifetime": None}  # not detached: dies with the test driver
    actor = ray.remote(LedgerActor).options(**options).remote(db_path, request_timeout_s=60.0)
    ray.get(actor.__ray_ready__.remote())
    yield actor, db_path
    ray.kill(actor, no_restart=True)


def actor_pid(actor) -> int:
    return ray.get(actor.__ray_call__.remote(lambda self: os.getpid()))


def wait_for_new_instance(actor, old_pid: int, timeout_s: float = 60.0) -> None:
    """Block until a restarted instance answers (the dying one may answer first, or fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if actor_pid(actor) != old_pid:
                return
        except ray.exceptions.RayActorError:  # includes ActorUnavailableError while restarting
            continue
    raise TimeoutError("the ledger actor did not restart")


def test_pending_finalize_report_round_trip_and_restart_keeps_rows(ledger):
    actor, db_path = ledger
    now = time.time()
    row = dict(user_id="alice", key_id="key_1", agent_id="reviewer", conversation_id="c1", chain="code_quality")
    budget = [Budget("key:key_1:daily", 0.05, "day", Scope.key("key_1"))]

    admitted = ray.get(actor.admit_and_open_pending.remote(PendingRow(request_id="r1", created_at=now, reserved_usd=0.04, **row), budget))
    assert isinstance(admitted, Admitted)
    refused = ray.get(actor.admit_and_open_pending.remote(PendingRow(request_id="r2", created_at=now, reserved_usd=0.02, **row), budget))
    assert isinstance(refused, BudgetExceeded) and refused.name == "key:key_1:daily"
    assert ray.get(actor.spend.remote(Scope.key("key_1"), now)) == (0.0, 0.04)

    final = FinalRow(request_id="r1", created_at=now, platform="openai", model="gpt-4o", input_tokens=1000,
                     output_tokens=500, cost_usd=0.0075, latency_ms=420.0, **row)
    ray.get(actor.finalize.remote(final))
    ray.get(actor.finalize.remote(final))  # a retried finalize: still one row, one charge
    # older than the request timeout (60 s); reports cover two UTC days so the test holds at midnight
    stale = PendingRow(request_id="stale", created_at=now - 120, reserved_usd=0.01, user_id="bob")
    ray.get(actor.open_pending.remote(stale))

    summary = ray.get(actor.summary.remote(None, 2))
    assert isinstance(summary, Summary)
    assert (summary.total.requests, summary.total.cost_usd, summary.total.total_tokens) == (1, 0.0075, 1500)
    assert [(m.platform, m.model) for m in summary.by_model] == [("openai", "gpt-4o")]

    pid = actor_pid(actor)
    ray.kill(actor, no_restart=False)  # SIGKILL-style crash; Ray restarts it (max_restarts=-1)
    wait_for_new_instance(actor, pid)

    after = ray.get(actor.summary.remote(None, 2))
    assert after.total.requests == 2  # r1, plus the stale pending row settled at restart
    assert after.total.cost_usd == pytest.approx(0.0175)  # 'unknown' is charged its reservation
    assert ray.get(actor.latency.remote("gpt-4o", 1)).samples == 1
    db = sqlite3.connect(db_path)
    try:
        statuses = dict(db.execute("SELECT request_id, status FROM agent_token_usage").fetchall())
    finally:
        db.close()
    assert statuses == {"r1": "ok", "stale": "unknown"}


async def test_client_batches_admissions_and_final_rows_and_reads_its_own_writes(ledger):
    """Concurrent admissions go as few `admit_many` calls, each still decided against the key's
    budget in order; final rows are queued without waiting and the report flushes them first."""
    from runtime.finops.ledger_client import RayLedgerClient

    actor, _ = ledger
    client = RayLedgerClient(actor, max_in_flight=1)
    now = time.time()
    who = dict(user_id="carol", key_id="key_9", chain="bulk")
    budget = [Budget("key:key_9:daily", 0.10, "day", Scope.key("key_9"))]
    pendings = [PendingRow(request_id=f"b{i}", created_at=now, reserved_usd=0.01, **who) for i in range(40)]

    results = await asyncio.gather(*(client.admit_and_open_pending(p, budget) for p in pendings))
    # decided in submission order: exactly the budget's room, first come first served
    assert [type(r) for r in results] == [Admitted] * 10 + [BudgetExceeded] * 30
    assert client._admissions.batches_sent < len(pendings)  # coalesced, not one call each

    admitted = [p for p, r in zip(pendings, results) if isinstance(r, Admitted)]
    for p in admitted:
        await client.finalize(FinalRow(request_id=p.request_id, created_at=now, platform="groq",
                                       model="llama-3.1-8b-instant", input_tokens=10, output_tokens=5,
                                       cost_usd=0.001, **who))
    summary = await client.summary("carol", 2)  # flushes the queued rows first
    assert (summary.total.requests, round(summary.total.cost_usd, 6)) == (10, 0.01)
    assert await client.admit_and_open_pending(pendings[0], budget) == Admitted("b0", (), 0.01)  # idempotent
