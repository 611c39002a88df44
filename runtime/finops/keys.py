"""API keys: created at random, shown once, stored only as a digest.

A key is `sk-sb-` + 32 random bytes (`secrets.token_urlsafe`). The database keeps its SHA-256
digest, never the key: with 256 bits of entropy there is nothing to brute-force, so neither a
salt nor a slow hash adds anything, and a digest lookup is one indexed read. The lookup finds the
row by digest and then compares the digests again with `hmac.compare_digest`, so the final
decision does not depend on a timing-variable string comparison.

Keys live in the ledger's SQLite file (table `api_keys`, migration 2); writes go through the
ledger's single writer (group-committed like every other write), reads through its reader.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol, TypeVar

import aiosqlite

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import Budget, Scope, to_nusd, to_usd

KEY_PREFIX = "sk-sb-"
KEY_ID_PREFIX = "key_"

T = TypeVar("T")
DbOp = Callable[[aiosqlite.Connection], Awaitable[T]]

MIGRATION_API_KEYS = """
CREATE TABLE api_keys (
    key_id          TEXT PRIMARY KEY,          -- public, short: safe to show and log
    digest          TEXT NOT NULL UNIQUE,      -- hex SHA-256 of the key; the key itself is never stored
    user_id         TEXT NOT NULL,
    agent           TEXT,
    daily_budget    INTEGER,                   -- nano-USD (1e-9 USD); NULL = no daily budget
    monthly_budget  INTEGER,                   -- nano-USD; NULL = no monthly budget
    rpm             INTEGER,
    created_at      REAL NOT NULL,             -- epoch seconds (UTC)
    disabled        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_api_keys_user ON api_keys (user_id, created_at);
"""

# A constant list of column names (SQL is composed only from constants; values are always bound).
_COLUMNS = "key_id, user_id, agent, daily_budget, monthly_budget, rpm, created_at, disabled"


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(6)


def key_digest(key: str) -> str:
    """Hex SHA-256 of a key (the same scheme as the admin key's digest)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """Everything about a key except the key (and its digest)."""

    key_id: str
    user_id: str
    created_at: float
    agent: str | None = None
    daily_budget_usd: float | None = None
    monthly_budget_usd: float | None = None
    rpm: int | None = None
    disabled: bool = False

    def budgets(self) -> tuple[Budget, ...]:
        """The key's budgets, named `key:<key_id>:daily` / `key:<key_id>:monthly`."""
        scope = Scope.key(self.key_id)
        out: list[Budget] = []
        if self.daily_budget_usd is not None:
            out.append(Budget(f"key:{self.key_id}:daily", self.daily_budget_usd, "day", scope))
        if self.monthly_budget_usd is not None:
            out.append(Budget(f"key:{self.key_id}:monthly", self.monthly_budget_usd, "month", scope))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class NewKey:
    """The result of `create`: the only time the plaintext key is available. Hidden from repr."""

    record: KeyRecord
    key: str = field(repr=False)


def _record(row: Any) -> KeyRecord:
    key_id, user_id, agent, daily, monthly, rpm, created_at, disabled = row
    return KeyRecord(
        key_id=key_id,
        user_id=user_id,
        created_at=created_at,
        agent=agent,
        daily_budget_usd=None if daily is None else to_usd(daily),
        monthly_budget_usd=None if monthly is None else to_usd(monthly),
        rpm=rpm,
        disabled=bool(disabled),
    )


def _optional_nusd(usd: float | None) -> int | None:
    return None if usd is None else to_nusd(usd)


class Database(Protocol):
    """What the key registry needs from the ledger store."""

    async def submit(self, op: DbOp[T]) -> T: ...

    async def read(self, op: DbOp[T]) -> T: ...


class KeyRegistry:
    """create / list / disable / enable / delete / lookup_by_key over the `api_keys` table."""

    def __init__(self, db: Database, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self._clock = clock

    async def create(
        self,
        user_id: str,
        *,
        agent: str | None = None,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        rpm: int | None = None,
    ) -> NewKey:
        if not user_id:
            raise ValueError("a key needs an owner user_id")
        if rpm is not None and rpm <= 0:
            raise ValueError("rpm must be > 0")
        daily, monthly = _optional_nusd(daily_budget_usd), _optional_nusd(monthly_budget_usd)
        plaintext = generate_key()
        record = KeyRecord(
            key_id=new_key_id(), user_id=user_id, created_at=self._clock.time(), agent=agent,
            daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd, rpm=rpm,
        )
        params = (record.key_id, key_digest(plaintext), user_id, agent, daily, monthly, rpm, record.created_at)

        async def insert(db: aiosqlite.Connection) -> None:
            await db.execute(
                "INSERT INTO api_keys (key_id, digest, user_id, agent, daily_budget, monthly_budget, "
                "rpm, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                params,
            )

        await self._db.submit(insert)
        return NewKey(record, plaintext)

    async def list(self, user_id: str | None = None) -> list[KeyRecord]:
        """Keys (never the key or its digest), oldest first; all users' when `user_id` is None."""

        async def select(db: aiosqlite.Connection) -> list[KeyRecord]:
            cursor = await db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE (:user_id IS NULL OR user_id = :user_id) "
                "ORDER BY created_at, key_id",
                {"user_id": user_id},
            )
            return [_record(row) for row in await cursor.fetchall()]

        return await self._db.read(select)

    async def get(self, key_id: str) -> KeyRecord | None:
        async def select(db: aiosqlite.Connection) -> KeyRecord | None:
            cursor = await db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,))
            row = await cursor.fetchone()
            return None if row is None else _record(row)

        return await self._db.read(select)

    async def disable(self, key_id: str) -> bool:
        return await self._set_disabled(key_id, True)

    async def enable(self, key_id: str) -> bool:
        return await self._set_disabled(key_id, False)

    async def delete(self, key_id: str) -> bool:
        async def remove(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute("DELETE FROM api_keys WHERE key_id = ?", (key_id,))
            return cursor.rowcount > 0

        return await self._db.submit(remove)

    async def lookup_by_key(self, key: str) -> KeyRecord | None:
        """The key's record, or None when unknown. A disabled key is returned with
        `disabled=True` (so the caller can say "disabled" rather than "unknown")."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = key_digest(key)

        async def select(db: aiosqlite.Connection) -> KeyRecord | None:
            cursor = await db.execute(f"SELECT digest, {_COLUMNS} FROM api_keys WHERE digest = ?", (digest,))
            row = await cursor.fetchone()
            if row is None or not hmac.compare_digest(row[0], digest):
                return None
            return _record(row[1:])

        return await self._db.read(select)

    async def _set_disabled(self, key_id: str, disabled: bool) -> bool:
        async def update(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "UPDATE api_keys SET disabled = ? WHERE key_id = ?", (int(disabled), key_id)
            )
            return cursor.rowcount > 0

        return await self._db.submit(update)
