"""What the ledger holds for the request ids an upstream saw, for the crash tests."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Sequence

NANO = 1e9


def statuses(db: Path, ids: Sequence[str]) -> dict[str, str]:
    """request_id -> status of the ledger rows of `ids` (missing ids are absent)."""
    conn = sqlite3.connect(db)
    try:
        marks = ",".join("?" * len(ids))
        return dict(conn.execute(
            f"SELECT request_id, status FROM agent_token_usage WHERE request_id IN ({marks})", list(ids)).fetchall())
    finally:
        conn.close()


def assert_charges_cover(db: Path, ids: Sequence[str], upstream_cost_usd: float) -> None:
    """Never under-charged: the rows of `ids` add up to at least what the upstream counted;
    the rows whose cost is known (not `unknown`) add up to no more than that."""
    conn = sqlite3.connect(db)
    try:
        marks = ",".join("?" * len(ids))
        total, unknown = conn.execute(
            f"SELECT COALESCE(SUM(estimated_cost), 0), "
            f"COALESCE(SUM(CASE WHEN status = 'unknown' THEN estimated_cost ELSE 0 END), 0) "
            f"FROM agent_token_usage WHERE request_id IN ({marks})", list(ids)).fetchone()
    finally:
        conn.close()
    eps = len(ids) / NANO  # rounding to whole nano-dollars, per row
    assert upstream_cost_usd - eps <= total / NANO
    assert (total - unknown) / NANO <= upstream_cost_usd + eps
