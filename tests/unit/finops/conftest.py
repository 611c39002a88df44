"""Fixtures for the FinOps tests: a fake clock at 2026-01-01 00:00 UTC and an open store."""
from __future__ import annotations

import pytest

from providers.clock import FakeClock
from runtime.finops.ledger_store import FinalRow, LedgerStore, PendingRow

NEW_YEAR_2026 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=NEW_YEAR_2026)


@pytest.fixture
def db_path(tmp_path) -> str:
    return str(tmp_path / "ledger.sqlite3")


@pytest.fixture
async def store(db_path, clock):
    async with LedgerStore(db_path, clock=clock) as opened:
        yield opened


@pytest.fixture
def make_final():
    """FinalRow factory: alice's gpt-4o call one minute into 2026, overridable per field."""

    def make(request_id: str, **fields) -> FinalRow:
        defaults = dict(user_id="alice", created_at=NEW_YEAR_2026 + 60, platform="openai", model="gpt-4o")
        return FinalRow(request_id=request_id, **{**defaults, **fields})

    return make


@pytest.fixture
def make_pending():
    """PendingRow factory: alice, reserving $0.01, one minute into 2026."""

    def make(request_id: str, **fields) -> PendingRow:
        defaults = dict(user_id="alice", created_at=NEW_YEAR_2026 + 60, reserved_usd=0.01, chain="code_quality")
        return PendingRow(request_id=request_id, **{**defaults, **fields})

    return make
