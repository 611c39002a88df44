"""The ledger's `tracked_changes` table (migration 3): store, get, compare-and-set updates."""
from __future__ import annotations

import sqlite3

import pytest

from providers.clock import FakeClock
from runtime.finops.ledger_schema import MIGRATIONS, TrackedChange
from runtime.finops.ledger_store import LedgerStore


def change(change_id: str = "chg_0000000000000001", **fields) -> TrackedChange:
    base = dict(
        change_id=change_id, user_id="alice", key_id="key_1", status="pending_confirmation",
        change={"type": "text", "component_id": "Title", "before": {"text": "Hi"}, "after": {"text": "Héllo"}},
        delta={"text": {"from": "Hi", "to": "Héllo"}}, summary="Changed the title.", summary_source="ai",
        affected_agents=("change-tracker", "ui-copy"), created_at=10.0, updated_at=10.0,
    )
    return TrackedChange(**{**base, **fields})


@pytest.fixture
async def store(tmp_path):
    clock = FakeClock(wall_start=1_000.0)
    async with LedgerStore(str(tmp_path / "ledger.sqlite3"), clock=clock) as opened:
        opened.test_clock = clock
        yield opened


async def test_the_migration_is_versioned_after_the_api_keys():
    versions = dict(MIGRATIONS)
    assert 3 in versions and 2 in versions and "CREATE TABLE tracked_changes" in versions[3]


async def test_a_change_round_trips_with_its_json_columns(store):
    await store.store_change(change())
    got = await store.get_change("chg_0000000000000001")
    assert got == change()
    assert await store.get_change("chg_missing") is None
    with pytest.raises(sqlite3.IntegrityError):  # ids are unique
        await store.store_change(change())


async def test_updates_are_compare_and_set_and_keep_the_result_unless_given(store):
    await store.store_change(change())
    store.test_clock.advance(5)
    assert await store.update_change("chg_0000000000000001", "confirming", expect_status="pending_confirmation")
    assert not await store.update_change("chg_0000000000000001", "confirming", expect_status="pending_confirmation")
    assert await store.update_change("chg_0000000000000001", "implemented", {"implementation": "code"}, "confirming")
    assert await store.update_change("chg_0000000000000001", "failed")  # no expectation: unconditional
    got = await store.get_change("chg_0000000000000001")
    assert (got.status, got.result, got.updated_at) == ("failed", {"implementation": "code"}, 1_005.0)
    assert not await store.update_change("chg_missing", "failed")


async def test_unknown_statuses_are_refused(store):
    with pytest.raises(ValueError):
        change(status="done")
    with pytest.raises(ValueError):
        await store.update_change("chg_0000000000000001", "done")
