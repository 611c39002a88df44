"""The ledger's schema as versioned migrations, and its SQL statements.

Every statement is a constant composed at import time from constants; values are always bound
parameters. Money columns are INTEGER nano-dollars (1e-9 USD, see runtime/finops/budget.py); times are
REAL epoch seconds (UTC). `spend_daily` is maintained by triggers on `agent_token_usage`, in
the same transaction as the row it follows: a pending row counts at its reservation
(`reserved`), every other status at its `estimated_cost` (`charged`).
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any, Sequence

import aiosqlite

from runtime.finops.budget import SECONDS_PER_DAY, Scope
from runtime.finops.allowance_schema import MIGRATION_ALLOWANCES, SQL_OUTSTANDING
from runtime.finops.keys import MIGRATION_API_KEYS



def _spend_delta(ref: str, sign: str) -> str:
    """Trigger statement: add (sign '+') or remove (sign '-') row `ref` (NEW/OLD) from
    spend_daily for its key, its user and 'all', on its UTC day."""
    return f"""
    INSERT INTO spend_daily (scope, scope_id, day, charged, reserved)
    SELECT s.scope, s.scope_id, CAST({ref}.created_at / {SECONDS_PER_DAY} AS INTEGER),
           {sign}(CASE WHEN {ref}.status = 'pending' THEN 0 ELSE {ref}.estimated_cost END),
           {sign}(CASE WHEN {ref}.status = 'pending' THEN {ref}.reserved_cost ELSE 0 END)
    FROM (SELECT 'key' AS scope, {ref}.key_id AS scope_id
          UNION ALL SELECT 'user', {ref}.user_id
          UNION ALL SELECT 'all', '') AS s
    WHERE s.scope_id IS NOT NULL
    ON CONFLICT (scope, scope_id, day) DO UPDATE
        SET charged = charged + excluded.charged, reserved = reserved + excluded.reserved;"""


MIGRATION_LEDGER = f"""
CREATE TABLE agent_token_usage (
    request_id      TEXT PRIMARY KEY,            -- one row per request: retries upsert, never add
    user_id         TEXT NOT NULL,
    key_id          TEXT,
    agent_id        TEXT NOT NULL DEFAULT 'orchestrator',
    conversation_id TEXT,
    endpoint        TEXT NOT NULL DEFAULT '',
    use_case        TEXT,
    chain           TEXT,
    platform        TEXT NOT NULL DEFAULT '',
    model           TEXT NOT NULL DEFAULT '',
    input_tokens    INTEGER NOT NULL DEFAULT 0,
    output_tokens   INTEGER NOT NULL DEFAULT 0,
    total_tokens    INTEGER NOT NULL DEFAULT 0,
    estimated_cost  INTEGER NOT NULL DEFAULT 0,  -- nano-USD; 0 while pending
    reserved_cost   INTEGER NOT NULL DEFAULT 0,  -- nano-USD reserved before the call
    saved_cost      INTEGER NOT NULL DEFAULT 0,  -- nano-USD a cache hit saved
    status          TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'error', 'unknown', 'cached')),
    cache_hit       INTEGER NOT NULL DEFAULT 0,
    fallback_used   INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    latency_ms      REAL NOT NULL DEFAULT 0,
    created_at      REAL NOT NULL                -- epoch seconds (UTC) the request started
);
CREATE INDEX idx_usage_created ON agent_token_usage (created_at);
CREATE INDEX idx_usage_user ON agent_token_usage (user_id, created_at);
CREATE INDEX idx_usage_agent ON agent_token_usage (agent_id, created_at);
CREATE INDEX idx_usage_conversation ON agent_token_usage (conversation_id, created_at)
    WHERE conversation_id IS NOT NULL;
CREATE INDEX idx_usage_pending ON agent_token_usage (created_at) WHERE status = 'pending';

CREATE TABLE ai_metrics (
    request_id    TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL,
    endpoint      TEXT NOT NULL DEFAULT '',
    platform      TEXT NOT NULL DEFAULT '',
    model         TEXT NOT NULL DEFAULT '',
    latency_ms    REAL NOT NULL DEFAULT 0,
    tokens_input  INTEGER NOT NULL DEFAULT 0,
    tokens_output INTEGER NOT NULL DEFAULT 0,
    cost          INTEGER NOT NULL DEFAULT 0,    -- nano-USD
    success       INTEGER NOT NULL,
    error_kind    TEXT,
    created_at    REAL NOT NULL
);
CREATE INDEX idx_metrics_created ON ai_metrics (created_at);
CREATE INDEX idx_metrics_model ON ai_metrics (model, created_at);
CREATE INDEX idx_metrics_user ON ai_metrics (user_id, created_at);

CREATE TABLE spend_daily (
    scope     TEXT NOT NULL,                     -- 'all' | 'user' | 'key'
    scope_id  TEXT NOT NULL,                     -- '' for 'all'
    day       INTEGER NOT NULL,                  -- UTC day number: floor(epoch / 86400)
    charged   INTEGER NOT NULL DEFAULT 0,        -- nano-USD of finished rows
    reserved  INTEGER NOT NULL DEFAULT 0,        -- nano-USD of pending rows' reservations
    PRIMARY KEY (scope, scope_id, day)
) WITHOUT ROWID;
CREATE TRIGGER usage_spend_insert AFTER INSERT ON agent_token_usage BEGIN
    {_spend_delta("NEW", "+")}
END;
CREATE TRIGGER usage_spend_update AFTER UPDATE ON agent_token_usage BEGIN
    {_spend_delta("OLD", "-")}
    {_spend_delta("NEW", "+")}
END;
CREATE TRIGGER usage_spend_delete AFTER DELETE ON agent_token_usage BEGIN
    {_spend_delta("OLD", "-")}
END;
"""

# Visual-editor changes (issue 7): captured, then confirmed (learn -> implement). The JSON columns
# hold the captured change, its delta, the affected agents and (once confirmed) the outcome.
MIGRATION_TRACKED_CHANGES = """
CREATE TABLE tracked_changes (
    change_id       TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL,
    key_id          TEXT,
    status          TEXT NOT NULL CHECK (status IN
                        ('pending_confirmation', 'confirming', 'implemented', 'failed')),
    change_json     TEXT NOT NULL,
    delta_json      TEXT NOT NULL,
    summary         TEXT NOT NULL,
    summary_source  TEXT NOT NULL CHECK (summary_source IN ('ai', 'template')),
    affected_json   TEXT NOT NULL,
    result_json     TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL
);
CREATE INDEX idx_tracked_changes_user ON tracked_changes (user_id, created_at);
"""

MIGRATIONS: tuple[tuple[int, str], ...] = (
    (1, MIGRATION_LEDGER), (2, MIGRATION_API_KEYS), (3, MIGRATION_TRACKED_CHANGES), (4, MIGRATION_ALLOWANCES),
)

_USAGE_COLUMNS = (
    "request_id, user_id, key_id, agent_id, conversation_id, endpoint, use_case, chain, platform, "
    "model, input_tokens, output_tokens, total_tokens, estimated_cost, reserved_cost, saved_cost, "
    "status, cache_hit, fallback_used, attempts, latency_ms, created_at, allowance_id"
)
_USAGE_VALUES = ", ".join(":" + c.strip() for c in _USAGE_COLUMNS.split(","))
_UPDATABLE = [c.strip() for c in _USAGE_COLUMNS.split(",") if c.strip() not in ("request_id", "created_at")]

SQL_INSERT_PENDING = (
    f"INSERT INTO agent_token_usage ({_USAGE_COLUMNS}) VALUES ({_USAGE_VALUES}) "
    "ON CONFLICT (request_id) DO NOTHING"
)
# The request's start time (created_at) is kept: it decides the day the cost counts on.
SQL_UPSERT_FINAL = (
    f"INSERT INTO agent_token_usage ({_USAGE_COLUMNS}) VALUES ({_USAGE_VALUES}) "
    "ON CONFLICT (request_id) DO UPDATE SET "
    + ", ".join(
        f"{c} = MAX(reserved_cost, excluded.reserved_cost)" if c == "reserved_cost"
        else f"{c} = COALESCE(excluded.{c}, {c})" if c == "allowance_id"  # a row keeps its allowance
        else f"{c} = excluded.{c}"
        for c in _UPDATABLE
    )
)
#: a call succeeded: `ok` and `cached` rows, and `unknown` ones without an error kind (served
#: after an attempt that went unanswered: runtime/core/unanswered.py)
SQL_METRICS_FROM_USAGE = """
INSERT INTO ai_metrics (request_id, user_id, endpoint, platform, model, latency_ms, tokens_input,
                        tokens_output, cost, success, error_kind, created_at)
SELECT request_id, user_id, endpoint, platform, model, latency_ms, input_tokens, output_tokens,
       estimated_cost, status IN ('ok', 'cached') OR (status = 'unknown' AND :error_kind IS NULL),
       :error_kind, created_at
FROM agent_token_usage WHERE request_id = :request_id
ON CONFLICT (request_id) DO UPDATE SET
    user_id = excluded.user_id, endpoint = excluded.endpoint, platform = excluded.platform,
    model = excluded.model, latency_ms = excluded.latency_ms, tokens_input = excluded.tokens_input,
    tokens_output = excluded.tokens_output, cost = excluded.cost, success = excluded.success,
    error_kind = excluded.error_kind
"""
SQL_RECOVER = """
UPDATE agent_token_usage SET status = 'unknown', estimated_cost = reserved_cost
WHERE status = 'pending' AND created_at < ? RETURNING request_id
"""
SQL_SPEND = """
SELECT COALESCE(SUM(charged), 0), COALESCE(SUM(reserved), 0) FROM spend_daily
WHERE scope = ? AND scope_id = ? AND day >= ?
"""


def split_statements(script: str) -> list[str]:
    """Split a migration script into complete statements (triggers stay whole)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement in migration: {buffer.strip()[:80]!r}")
    return statements


async def migrate(db: aiosqlite.Connection, migrations: Sequence[tuple[int, str]], now: float) -> list[int]:
    """Apply every migration not yet recorded in `schema_version`, each in its own
    transaction. Idempotent; safe against a second process migrating at the same time."""
    await db.execute(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)"
    )
    applied: list[int] = []
    for version, script in migrations:
        await db.execute("BEGIN IMMEDIATE")
        try:
            cursor = await db.execute("SELECT 1 FROM schema_version WHERE version = ?", (version,))
            if await cursor.fetchone() is None:
                for statement in split_statements(script):
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, now))
                applied.append(version)
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
    return applied


async def spend_nusd(db: aiosqlite.Connection, scope: Scope, since_wall: float) -> tuple[int, int]:
    """(charged, reserved) nano-USD of `scope` from the UTC day containing `since_wall` on;
    reserved includes what replicas' allowances still hold (allowance_schema.py)."""
    day = math.floor(since_wall / SECONDS_PER_DAY)
    cursor = await db.execute(SQL_SPEND, (scope.kind, scope.id, day))
    charged, reserved = await cursor.fetchone()
    cursor = await db.execute(SQL_OUTSTANDING, {"since": day * SECONDS_PER_DAY, "kind": scope.kind, "id": scope.id})
    (outstanding,) = await cursor.fetchone()
    return int(charged), int(reserved) + int(outstanding)


# -- tracked changes (visual editor) ----------------------------------------------------------

CHANGE_STATUSES = ("pending_confirmation", "confirming", "implemented", "failed")
_CHANGE_COLUMNS = (
    "change_id, user_id, key_id, status, change_json, delta_json, summary, summary_source, "
    "affected_json, result_json, created_at, updated_at"
)
SQL_INSERT_CHANGE = (
    f"INSERT INTO tracked_changes ({_CHANGE_COLUMNS}) VALUES "
    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQL_SELECT_CHANGE = f"SELECT {_CHANGE_COLUMNS} FROM tracked_changes WHERE change_id = ?"
# One statement for both a claim (compare-and-set on `expect_status`) and a final update; a
# NULL result keeps the stored one.
SQL_UPDATE_CHANGE = """
UPDATE tracked_changes
SET status = :status, result_json = COALESCE(:result_json, result_json), updated_at = :now
WHERE change_id = :change_id AND (:expect_status IS NULL OR status = :expect_status)
"""


@dataclass(frozen=True, slots=True)
class TrackedChange:
    """One visual-editor change as stored in `tracked_changes` (JSON columns decoded)."""

    change_id: str
    user_id: str
    status: str
    change: dict[str, Any]
    delta: dict[str, Any]
    summary: str
    summary_source: str
    affected_agents: tuple[str, ...]
    created_at: float
    updated_at: float
    key_id: str | None = None
    result: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in CHANGE_STATUSES:
            raise ValueError(f"a change's status is one of {CHANGE_STATUSES}, got {self.status!r}")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


async def insert_change(db: aiosqlite.Connection, c: TrackedChange) -> None:
    await db.execute(SQL_INSERT_CHANGE, (
        c.change_id, c.user_id, c.key_id, c.status, _dumps(c.change), _dumps(c.delta), c.summary,
        c.summary_source, _dumps(list(c.affected_agents)),
        None if c.result is None else _dumps(c.result), c.created_at, c.updated_at,
    ))


async def select_change(db: aiosqlite.Connection, change_id: str) -> TrackedChange | None:
    row = await (await db.execute(SQL_SELECT_CHANGE, (change_id,))).fetchone()
    if row is None:
        return None
    (cid, user_id, key_id, status, change, delta, summary, source, affected, result, created,
     updated) = row
    return TrackedChange(
        change_id=cid, user_id=user_id, key_id=key_id, status=status, change=json.loads(change),
        delta=json.loads(delta), summary=summary, summary_source=source,
        affected_agents=tuple(json.loads(affected)), result=None if result is None else json.loads(result),
        created_at=created, updated_at=updated,
    )


async def update_change(
    db: aiosqlite.Connection,
    change_id: str,
    status: str,
    now: float,
    result: dict[str, Any] | None = None,
    expect_status: str | None = None,
) -> bool:
    """Set the status (and result); with `expect_status`, only from that status. True if set."""
    if status not in CHANGE_STATUSES:
        raise ValueError(f"a change's status is one of {CHANGE_STATUSES}, got {status!r}")
    cursor = await db.execute(SQL_UPDATE_CHANGE, {
        "status": status, "result_json": None if result is None else _dumps(result), "now": now,
        "change_id": change_id, "expect_status": expect_status,
    })
    return cursor.rowcount > 0
