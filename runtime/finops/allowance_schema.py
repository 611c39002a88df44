"""The ledger's spending allowances (budget leases), as a migration and its statements.

An allowance is an amount of a key's budgets granted to one replica, which then admits that
key's requests itself (their pending rows go to its journal) without asking the ledger each
time. Rows admitted under an allowance carry its id and count in `spend_daily` as any row does;
each also adds its current amount (a pending row's reservation, a finished row's cost) to its
allowance's `drawn` (triggers). What an allowance still holds, `granted - drawn` while positive,
is counted as reserved for its key, its user and 'all' on the UTC day it was granted, read at
query time (`SQL_OUTSTANDING`, over a partial index of the allowances that hold anything): a row
costs one update of its allowance, not three more `spend_daily` upserts. So an allowance and its
rows together count `MAX(granted, drawn)`: a replica that admits within its grant never adds to
what was granted.

Returning an allowance sets `granted` to what its rows came to (the replica sends it once no
call under it is in flight), so the rest is released as soon as the rows are in. An allowance
that is never returned (its replica died) stays counted until its day ends: its replica may
have made calls whose rows are still in a journal nobody has adopted yet. Never under-charged.
"""
from __future__ import annotations


def _row_amount(ref: str) -> str:
    return f"(CASE WHEN {ref}.status = 'pending' THEN {ref}.reserved_cost ELSE {ref}.estimated_cost END)"


def _draw(ref: str, sign: str) -> str:
    return (f"UPDATE allowances SET drawn = drawn {sign} {_row_amount(ref)} "
            f"WHERE allowance_id = {ref}.allowance_id;")


MIGRATION_ALLOWANCES = f"""
ALTER TABLE agent_token_usage ADD COLUMN allowance_id TEXT;
CREATE TABLE allowances (
    allowance_id TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL,
    key_id       TEXT,
    granted      INTEGER NOT NULL CHECK (granted >= 0),  -- nano-USD
    drawn        INTEGER NOT NULL DEFAULT 0,             -- nano-USD: its rows' current amounts
    returned     INTEGER NOT NULL DEFAULT 0,
    created_at   REAL NOT NULL,                          -- its day is the day it counts on
    expires_at   REAL NOT NULL
);
CREATE INDEX idx_allowances_outstanding ON allowances (created_at) WHERE granted > drawn;
CREATE TRIGGER usage_allowance_insert AFTER INSERT ON agent_token_usage
WHEN NEW.allowance_id IS NOT NULL BEGIN
    {_draw("NEW", "+")}
END;
CREATE TRIGGER usage_allowance_update AFTER UPDATE ON agent_token_usage
WHEN OLD.allowance_id IS NOT NULL OR NEW.allowance_id IS NOT NULL BEGIN
    {_draw("OLD", "-")}
    {_draw("NEW", "+")}
END;
CREATE TRIGGER usage_allowance_delete AFTER DELETE ON agent_token_usage
WHEN OLD.allowance_id IS NOT NULL BEGIN
    {_draw("OLD", "-")}
END;
"""

SQL_INSERT_ALLOWANCE = """
INSERT INTO allowances (allowance_id, user_id, key_id, granted, created_at, expires_at)
VALUES (:allowance_id, :user_id, :key_id, :granted, :created_at, :expires_at)
"""
#: returning twice changes nothing (the first return set `granted`)
SQL_RETURN_ALLOWANCE = """
UPDATE allowances SET granted = :used, returned = 1 WHERE allowance_id = :allowance_id AND returned = 0
"""
#: what the allowances granted since `:since` (a UTC day's start) still hold, for one scope
SQL_OUTSTANDING = """
SELECT COALESCE(SUM(granted - drawn), 0) FROM allowances
WHERE granted > drawn AND created_at >= :since
  AND (:kind = 'all' OR (:kind = 'key' AND key_id = :id) OR (:kind = 'user' AND user_id = :id))
"""
