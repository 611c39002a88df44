"""API keys: shown once, stored as a digest, listed without secrets, disabled/enabled/deleted."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from runtime.finops.budget import Admitted, BudgetExceeded, Scope
from runtime.finops.keys import KEY_PREFIX, key_digest

NEW_YEAR_2026 = 1_767_225_600.0  # the fake clock's wall start (conftest)


def db_bytes(db_path: str) -> bytes:
    """The database file plus its WAL: everything SQLite has written."""
    return b"".join(p.read_bytes() for p in Path(db_path).parent.glob(Path(db_path).name + "*"))


async def test_the_database_holds_a_digest_never_the_key(store, db_path):
    created = await store.keys.create("alice", agent="reviewer", daily_budget_usd=1.5)
    await store.drain()
    stored = db_bytes(db_path)
    assert created.key.startswith(KEY_PREFIX) and len(created.key) > 40
    assert created.key.encode() not in stored
    assert created.key[len(KEY_PREFIX):].encode() not in stored
    assert key_digest(created.key).encode() in stored
    assert created.key not in repr(created)


async def test_create_then_lookup_list_and_budgets(store, clock):
    created = await store.keys.create("alice", agent="reviewer", daily_budget_usd=1.5, monthly_budget_usd=20.0, rpm=60)
    record = created.record
    assert (record.user_id, record.agent, record.rpm, record.created_at, record.disabled) == ("alice", "reviewer", 60, clock.time(), False)
    assert await store.keys.lookup_by_key(created.key) == record
    assert await store.keys.get(record.key_id) == record
    assert [(b.name, b.limit_usd, b.period, b.scope) for b in record.budgets()] == [
        (f"key:{record.key_id}:daily", 1.5, "day", Scope.key(record.key_id)),
        (f"key:{record.key_id}:monthly", 20.0, "month", Scope.key(record.key_id)),
    ]
    clock.advance(1)
    other = await store.keys.create("bob")
    assert other.record.budgets() == ()
    assert [k.key_id for k in await store.keys.list()] == [record.key_id, other.record.key_id]  # oldest first
    assert [k.key_id for k in await store.keys.list("bob")] == [other.record.key_id]
    for listed in await store.keys.list():
        assert set(asdict(listed)) == {
            "key_id", "user_id", "created_at", "agent", "daily_budget_usd", "monthly_budget_usd", "rpm", "disabled",
        }


async def test_unknown_wrong_and_near_miss_keys_find_nothing(store):
    created = await store.keys.create("alice")
    assert await store.keys.lookup_by_key(created.key[:-1] + ("A" if created.key[-1] != "A" else "B")) is None
    assert await store.keys.lookup_by_key("sk-sb-nope") is None
    assert await store.keys.lookup_by_key(key_digest(created.key)) is None  # the digest is not a key
    assert await store.keys.lookup_by_key("") is None


async def test_disable_enable_delete(store):
    created = await store.keys.create("alice")
    key_id = created.record.key_id
    assert await store.keys.disable(key_id) is True
    assert (await store.keys.lookup_by_key(created.key)).disabled is True
    assert await store.keys.enable(key_id) is True
    assert (await store.keys.lookup_by_key(created.key)).disabled is False
    assert await store.keys.delete(key_id) is True
    assert await store.keys.lookup_by_key(created.key) is None
    assert await store.keys.list() == []
    assert await store.keys.delete(key_id) is False and await store.keys.disable("key_missing") is False


async def test_each_key_is_unique(store):
    keys = [await store.keys.create("alice") for _ in range(20)]
    assert len({k.key for k in keys}) == 20 and len({k.record.key_id for k in keys}) == 20


@pytest.mark.parametrize("bad", [dict(user_id=""), dict(rpm=0), dict(daily_budget_usd=-1.0), dict(monthly_budget_usd=float("nan"))])
async def test_invalid_key_settings_are_refused(store, bad):
    fields = {"user_id": "alice"} | bad
    with pytest.raises(ValueError):
        await store.keys.create(fields.pop("user_id"), **fields)
    assert await store.keys.list() == []


async def test_a_keys_budgets_guard_its_admissions(store, make_pending):
    created = await store.keys.create("alice", daily_budget_usd=0.01)
    record = await store.keys.lookup_by_key(created.key)
    row = make_pending("r1", key_id=record.key_id, reserved_usd=0.006)
    assert isinstance(await store.admit_and_open_pending(row, record.budgets()), Admitted)
    refused = await store.admit_and_open_pending(make_pending("r2", key_id=record.key_id, reserved_usd=0.006), record.budgets())
    assert isinstance(refused, BudgetExceeded) and refused.name == f"key:{record.key_id}:daily"
