"""The ledger store: durability settings, migrations, upsert semantics, recovery, group commit,
and SQL metacharacters stored and queried verbatim."""
from __future__ import annotations

import asyncio
import sqlite3

import pytest

from runtime.finops.budget import ALL, Scope
from runtime.finops.ledger_schema import MIGRATIONS, migrate
from runtime.finops.ledger_store import FinalRow, LedgerError, LedgerStore, PendingRow

NEW_YEAR_2026 = 1_767_225_600.0  # the fake clock's wall start (conftest)


def rows(db_path: str, sql: str, params=()) -> list[tuple]:
    """Read with a separate plain sqlite3 connection: what another process would see."""
    db = sqlite3.connect(db_path)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def usage(db_path: str, request_id: str) -> tuple:
    (row,) = rows(
        db_path,
        "SELECT status, estimated_cost, reserved_cost, input_tokens, output_tokens, total_tokens, created_at "
        "FROM agent_token_usage WHERE request_id = ?",
        (request_id,),
    )
    return row


# --------------------------------------------------------------------------- durability


async def test_wal_and_synchronous_full_are_in_effect(store, db_path):
    async def pragmas(db):
        sync = await (await db.execute("PRAGMA synchronous")).fetchone()
        mode = await (await db.execute("PRAGMA journal_mode")).fetchone()
        return sync[0], mode[0]

    assert await store.submit(pragmas) == (2, "wal")  # 2 = FULL, on the writer connection


async def test_a_synchronous_level_that_does_not_take_refuses_to_open(db_path, clock, monkeypatch):
    monkeypatch.setattr("runtime.finops.ledger_store.SYNCHRONOUS_LEVELS", {"FULL": 3})  # expects 3, gets 2
    with pytest.raises(LedgerError, match="synchronous=FULL did not take effect"):
        await LedgerStore(db_path, clock=clock).open()


async def test_unknown_synchronous_level_is_rejected(db_path):
    with pytest.raises(ValueError):
        LedgerStore(db_path, synchronous="OFF; DROP TABLE x")


# --------------------------------------------------------------------------- migrations


async def test_migrations_are_recorded_and_idempotent(db_path, clock, make_final):
    async with LedgerStore(db_path, clock=clock) as first:
        assert await first.schema_versions() == [version for version, _ in MIGRATIONS]
        await first.finalize(make_final("r1"))
    async with LedgerStore(db_path, clock=clock) as second:  # reopening re-applies nothing
        assert await second.schema_versions() == [version for version, _ in MIGRATIONS]
    assert rows(db_path, "SELECT COUNT(*) FROM agent_token_usage") == [(1,)]
    assert rows(db_path, "SELECT COUNT(*) FROM schema_version") == [(len(MIGRATIONS),)]


async def test_a_version_1_database_is_upgraded_to_version_2_only(db_path, clock):
    import aiosqlite

    async with aiosqlite.connect(db_path, isolation_level=None) as db:
        assert await migrate(db, MIGRATIONS[:1], 1.0) == [1]
        await db.execute(
            "INSERT INTO agent_token_usage (request_id, user_id, status, created_at) VALUES ('old', 'u', 'ok', 5)"
        )
    async with LedgerStore(db_path, clock=clock) as store:
        assert await store.schema_versions() == [version for version, _ in MIGRATIONS]
        assert await store.keys.list() == []
    assert rows(db_path, "SELECT request_id FROM agent_token_usage") == [("old",)]
    assert rows(db_path, "SELECT version, applied_at FROM schema_version WHERE version = 1") == [(1, 1.0)]


# ----------------------------------------------------------------------- upsert semantics


async def test_pending_then_final_replaces_the_reservation_with_the_real_cost(store, db_path, make_pending, make_final):
    await store.open_pending(make_pending("r1", reserved_usd=0.05))
    assert usage(db_path, "r1")[:3] == ("pending", 0, 50_000_000)
    assert await store.spend(ALL, NEW_YEAR_2026) == (0.0, 0.05)

    await store.finalize(make_final("r1", cost_usd=0.0123, input_tokens=100, output_tokens=20, created_at=NEW_YEAR_2026 + 99))
    status, cost, reserved, tin, tout, total, created = usage(db_path, "r1")
    assert (status, cost, reserved, tin, tout, total) == ("ok", 12_300_000, 50_000_000, 100, 20, 120)
    assert created == NEW_YEAR_2026 + 60  # the request's start time is kept
    assert await store.spend(ALL, NEW_YEAR_2026) == (0.0123, 0.0)


async def test_retried_finalize_and_record_never_double_charge(store, db_path, make_final):
    for _ in range(3):
        await store.finalize(make_final("r1", cost_usd=0.02))
    await store.record(make_final("r1", cost_usd=0.02))
    await store.finalize(make_final("r1", cost_usd=0.03, status="error", error_kind="timeout"))
    assert rows(db_path, "SELECT COUNT(*), SUM(estimated_cost) FROM agent_token_usage") == [(1, 30_000_000)]
    assert rows(db_path, "SELECT COUNT(*), cost, success, error_kind FROM ai_metrics") == [(1, 30_000_000, 0, "timeout")]
    assert await store.spend(ALL, NEW_YEAR_2026) == (0.03, 0.0)


async def test_finalize_without_pending_inserts_and_repeated_pending_is_a_no_op(store, db_path, make_pending, make_final):
    await store.finalize(make_final("r1", cost_usd=0.001))
    await store.open_pending(make_pending("r1", reserved_usd=1.0))  # late duplicate: ignored
    assert usage(db_path, "r1")[:3] == ("ok", 1_000_000, 0)
    await store.open_pending(make_pending("r2", reserved_usd=0.5))
    await store.open_pending(make_pending("r2", reserved_usd=0.7))
    assert usage(db_path, "r2")[:3] == ("pending", 0, 500_000_000)


async def test_recover_makes_old_pending_rows_unknown_charged_at_their_reservation(store, clock, db_path, make_pending, make_final):
    await store.open_pending(make_pending("old", created_at=clock.time() - 300, reserved_usd=0.04))
    await store.open_pending(make_pending("young", created_at=clock.time() - 10, reserved_usd=0.02))
    await store.finalize(make_final("done", created_at=clock.time() - 300, cost_usd=0.01))

    assert await store.recover(older_than_s=120) == 1
    assert usage(db_path, "old")[:3] == ("unknown", 40_000_000, 40_000_000)
    assert usage(db_path, "young")[0] == "pending"
    assert usage(db_path, "done")[0] == "ok"
    assert rows(db_path, "SELECT success, error_kind, cost FROM ai_metrics WHERE request_id = 'old'") == [(0, "unknown", 40_000_000)]
    spent, reserved = await store.spend(ALL, NEW_YEAR_2026 - 86_400)
    assert (spent, reserved) == (pytest.approx(0.05, abs=1e-12), 0.02)
    assert await store.recover(older_than_s=120) == 0


# ------------------------------------------------------------------------------ group commit


async def test_many_concurrent_writes_share_few_commits(store, db_path, make_final):
    before = store.stats.commits
    await asyncio.gather(*(store.finalize(make_final(f"r{i}", cost_usd=0.001)) for i in range(300)))
    commits = store.stats.commits - before
    assert 1 <= commits <= 10, commits
    assert store.stats.largest_batch >= 30
    assert rows(db_path, "SELECT COUNT(*), SUM(estimated_cost) FROM agent_token_usage") == [(300, 300_000_000)]


async def test_a_single_write_is_durable_when_its_await_returns(store, db_path, make_final):
    before = store.stats.commits
    await store.finalize(make_final("solo", cost_usd=0.5))
    assert store.stats.commits == before + 1
    assert usage(db_path, "solo")[:2] == ("ok", 500_000_000)  # visible to another connection


async def test_a_failing_operation_fails_alone(store, db_path, make_final):
    async def broken(db):
        await db.execute("INSERT INTO no_such_table VALUES (1)")

    results = await asyncio.gather(
        store.finalize(make_final("a")), store.submit(broken), store.finalize(make_final("b")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.OperationalError)
    assert rows(db_path, "SELECT request_id FROM agent_token_usage ORDER BY 1") == [("a",), ("b",)]


async def test_close_flushes_queued_writes(db_path, clock, make_final):
    store = await LedgerStore(db_path, clock=clock).open()
    tasks = [asyncio.ensure_future(store.finalize(make_final(f"r{i}"))) for i in range(50)]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*tasks)
    assert rows(db_path, "SELECT COUNT(*) FROM agent_token_usage") == [(50,)]


# --------------------------------------------------------------------------- metacharacters

NASTY = ["x'; DROP TABLE agent_token_usage; --", 'q"uote', "100%_like", "back\\slash", "nul\x00byte", "é✓🙂", ":user_id", "?"]


@pytest.mark.parametrize("text", NASTY)
async def test_sql_metacharacters_are_stored_and_queried_verbatim(store, db_path, make_final, text):
    row = make_final(
        text, user_id=text, key_id=text, agent_id=text, conversation_id=text, endpoint=text,
        use_case=text, chain=text, platform=text, model=text, error_kind=text, cost_usd=0.25,
    )
    await store.finalize(row)
    stored = rows(
        db_path,
        "SELECT request_id, user_id, key_id, agent_id, conversation_id, endpoint, use_case, chain, platform, model "
        "FROM agent_token_usage",
    )
    assert stored == [(text,) * 10]
    assert rows(db_path, "SELECT error_kind FROM ai_metrics") == [(text,)]
    assert await store.spend(Scope.user(text), NEW_YEAR_2026) == (0.25, 0.0)
    assert await store.spend(Scope.key(text), NEW_YEAR_2026) == (0.25, 0.0)
    assert [u.user_id for u in await store.reports.by_user(text, days=1)] == [text]
    assert [a.agent_id for a in await store.reports.by_agent(days=1, user_id=text)] == [text]
    assert [c.conversation_id for c in await store.reports.conversations(days=1, user_id=text)] == [text]
    assert (await store.reports.latency(text, days=1, user_id=text)).samples == 1
    summary = await store.reports.summary(text, days=1)
    assert [(m.platform, m.model) for m in summary.by_model] == [(text, text)]
    assert (await store.reports.summary("alice", days=1)).total.requests == 0


@pytest.mark.parametrize(
    "bad",
    [
        dict(cost_usd=-0.01), dict(cost_usd=float("nan")), dict(reserved_usd=float("inf")),
        dict(input_tokens=-1), dict(status="pending"), dict(request_id=""), dict(user_id=""),
        dict(latency_ms=-1.0),
    ],
)
def test_invalid_rows_are_refused_before_they_reach_the_queue(bad):
    fields = dict(request_id="r", user_id="u", created_at=NEW_YEAR_2026) | bad
    with pytest.raises(ValueError):
        FinalRow(**fields)


def test_pending_rows_cannot_reserve_a_negative_amount():
    with pytest.raises(ValueError):
        PendingRow(request_id="r", user_id="u", created_at=NEW_YEAR_2026, reserved_usd=-1)


# --------------------------------------------------------------------------- batches


async def test_batches_are_written_whole_and_keep_the_single_row_semantics(store, db_path, make_pending, make_final):
    assert await store.open_pending_many([make_pending(f"b-{i}") for i in range(5)]) == [None] * 5
    assert await store.finalize_many([make_final("b-0", cost_usd=0.002), make_final("b-9", cost_usd=0.001)]) == [None, None]
    assert await store.open_pending_many([make_pending("b-0"), make_pending("b-9")]) == [None, None]  # no-ops
    await store.drain()
    statuses = dict(rows(db_path, "SELECT request_id, status FROM agent_token_usage WHERE request_id LIKE 'b-%'"))
    assert statuses == {"b-0": "ok", "b-1": "pending", "b-2": "pending", "b-3": "pending", "b-4": "pending", "b-9": "ok"}


async def test_one_bad_row_in_a_batch_fails_only_itself(store, db_path, make_final):
    bad = make_final("x-bad", conversation_id=object())  # cannot be bound: a per-row SQL error
    results = await store.finalize_many([make_final("x-1"), bad, make_final("x-2")])
    assert results[0] is None and results[2] is None and isinstance(results[1], sqlite3.Error)
    await store.drain()
    assert {r for (r,) in rows(db_path, "SELECT request_id FROM agent_token_usage WHERE request_id LIKE 'x-%'")} == {"x-1", "x-2"}


async def test_pending_and_final_rows_of_one_batch_commit_together(store, db_path, make_pending, make_final):
    commits = store._writer.stats.commits if store._writer else 0
    assert await store.write_rows([make_pending("w-1"), make_pending("w-2")], [make_final("w-1")]) == ([None, None], [None])
    await store.drain()
    assert dict(rows(db_path, "SELECT request_id, status FROM agent_token_usage WHERE request_id LIKE 'w-%'")) == \
        {"w-1": "ok", "w-2": "pending"}
    assert store._writer.stats.commits - commits <= 2  # the batch, and the drain's own no-op at most
