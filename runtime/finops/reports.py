"""FinOps reports: parameterized queries over the ledger → typed results.

Every report covers the last `days` UTC days including today (from the start of the UTC day
`days - 1` days before the clock's today), counts finished rows only (pending ones are still
in flight) and may be scoped to one user: a user sees only their own costs. `days` is an int in
1..366. SQL text is constant; every value (window, user, model, limit) is a bound parameter.

Latency percentiles use the nearest-rank method over the latencies sorted ascending: the p-th
percentile of n samples is the value at 1-based rank ceil(p/100 · n). It is always a real
sample (no interpolation), p100 is the maximum, and one sample is every percentile.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Sequence

import aiosqlite

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import SECONDS_PER_DAY, to_usd, utc_day_start

MAX_DAYS = 366
MAX_LIMIT = 1000
Reader = Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]], Awaitable[Any]]


# ----------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    errors: int
    cost_usd: float
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cache_hits: int
    saved_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CostLine:
    """One group's share: requests, tokens, cost and the average cost per request."""

    requests: int
    total_tokens: int
    cost_usd: float
    avg_cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class PlatformCost(CostLine):
    platform: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelCost(CostLine):
    platform: str
    model: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCost(CostLine):
    agent_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UserCost(CostLine):
    user_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DayCost(CostLine):
    date: str  # YYYY-MM-DD (UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConversationCost(CostLine):
    conversation_id: str


@dataclass(frozen=True, slots=True)
class Summary:
    days: int
    user_id: str | None
    total: Totals
    by_platform: list[PlatformCost]
    by_model: list[ModelCost]


@dataclass(frozen=True, slots=True)
class LatencyReport:
    model: str | None
    days: int
    samples: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


# ------------------------------------------------------------------------------- pure helpers


def validate_days(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be an integer from 1 to {MAX_DAYS}, got {days!r}")
    return days


def validate_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def window_start(now: float, days: int) -> float:
    """Start of the report window: the last `days` UTC days, today included."""
    return utc_day_start(now) - (validate_days(days) - 1) * SECONDS_PER_DAY


def nearest_rank(sorted_values: Sequence[float], percentile: float) -> float | None:
    """The nearest-rank percentile of values already sorted ascending (None if empty)."""
    if not 0 < percentile <= 100:
        raise ValueError("percentile must be in (0, 100]")
    if not sorted_values:
        return None
    rank = math.ceil(percentile / 100 * len(sorted_values))
    return sorted_values[max(rank, 1) - 1]


def _line(row: Any) -> dict[str, Any]:
    requests, tokens, cost = row["requests"], row["total_tokens"], row["cost"]
    return {
        "requests": requests,
        "total_tokens": tokens,
        "cost_usd": to_usd(cost),
        "avg_cost_usd": to_usd(cost) / requests if requests else 0.0,
    }


# ------------------------------------------------------------------------------------- SQL
# The shared pieces are constants: the aggregate columns and the window/user filter.

_AGG = "COUNT(*) AS requests, COALESCE(SUM(total_tokens), 0) AS total_tokens, COALESCE(SUM(estimated_cost), 0) AS cost"
_WHERE = "WHERE created_at >= :since AND status != 'pending' AND (:user_id IS NULL OR user_id = :user_id)"
_ORDER = "ORDER BY cost DESC, requests DESC"

SQL_TOTALS = f"""
SELECT COUNT(*) AS requests, COALESCE(SUM(status = 'error'), 0) AS errors,
       COALESCE(SUM(estimated_cost), 0) AS cost, COALESCE(SUM(input_tokens), 0) AS input_tokens,
       COALESCE(SUM(output_tokens), 0) AS output_tokens, COALESCE(SUM(total_tokens), 0) AS total_tokens,
       COALESCE(SUM(cache_hit), 0) AS cache_hits, COALESCE(SUM(saved_cost), 0) AS saved
FROM agent_token_usage {_WHERE}"""
SQL_BY_PLATFORM = f"SELECT platform, {_AGG} FROM agent_token_usage {_WHERE} GROUP BY platform {_ORDER}, platform"
SQL_BY_MODEL = f"SELECT platform, model, {_AGG} FROM agent_token_usage {_WHERE} GROUP BY platform, model {_ORDER}, platform, model"
SQL_BY_AGENT = f"SELECT agent_id, {_AGG} FROM agent_token_usage {_WHERE} GROUP BY agent_id {_ORDER}, agent_id"
SQL_BY_USER = f"SELECT user_id, {_AGG} FROM agent_token_usage {_WHERE} GROUP BY user_id {_ORDER}, user_id"
SQL_DAILY = f"""
SELECT date(created_at, 'unixepoch') AS date, {_AGG} FROM agent_token_usage {_WHERE}
GROUP BY date(created_at, 'unixepoch')"""
SQL_CONVERSATIONS = f"""
SELECT conversation_id, {_AGG} FROM agent_token_usage {_WHERE} AND conversation_id IS NOT NULL
GROUP BY conversation_id {_ORDER}, conversation_id LIMIT :limit"""
SQL_LATENCIES = """
SELECT latency_ms FROM ai_metrics
WHERE created_at >= :since AND success = 1 AND (:model IS NULL OR model = :model)
  AND (:user_id IS NULL OR user_id = :user_id)
ORDER BY latency_ms"""


async def _rows(db: aiosqlite.Connection, sql: str, params: dict[str, Any]) -> list[Any]:
    cursor = await db.execute(sql, params)
    cursor.row_factory = _dict_row
    return list(await cursor.fetchall())


def _dict_row(cursor: Any, row: tuple[Any, ...]) -> dict[str, Any]:
    return {col[0]: value for col, value in zip(cursor.description, row)}


# ------------------------------------------------------------------------------------ reports


class Reports:
    """The report queries, run through a reader (the ledger store's read connection)."""

    def __init__(self, read: Reader, clock: Clock = SYSTEM_CLOCK) -> None:
        self._read = read
        self._clock = clock

    def _params(self, days: int, user_id: str | None, **extra: Any) -> dict[str, Any]:
        return {"since": window_start(self._clock.time(), days), "user_id": user_id, **extra}

    async def _query(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        return await self._read(lambda db: _rows(db, sql, params))

    async def summary(self, user_id: str | None = None, days: int = 30) -> Summary:
        """Totals (requests, errors, cost, tokens, cache hits, saved) and cost by platform and
        by model."""
        params = self._params(days, user_id)

        async def run(db: aiosqlite.Connection) -> Summary:
            (t,) = await _rows(db, SQL_TOTALS, params)
            platforms = await _rows(db, SQL_BY_PLATFORM, params)
            models = await _rows(db, SQL_BY_MODEL, params)
            total = Totals(
                requests=t["requests"], errors=t["errors"], cost_usd=to_usd(t["cost"]),
                input_tokens=t["input_tokens"], output_tokens=t["output_tokens"],
                total_tokens=t["total_tokens"], cache_hits=t["cache_hits"], saved_usd=to_usd(t["saved"]),
            )
            return Summary(
                days, user_id, total,
                [PlatformCost(platform=r["platform"], **_line(r)) for r in platforms],
                [ModelCost(platform=r["platform"], model=r["model"], **_line(r)) for r in models],
            )

        return await self._read(run)

    async def by_user(self, user_id: str | None = None, days: int = 30) -> list[UserCost]:
        """Cost per user, most expensive first (only `user_id`'s line when given)."""
        rows = await self._query(SQL_BY_USER, self._params(days, user_id))
        return [UserCost(user_id=r["user_id"], **_line(r)) for r in rows]

    async def by_agent(self, days: int = 30, user_id: str | None = None) -> list[AgentCost]:
        rows = await self._query(SQL_BY_AGENT, self._params(days, user_id))
        return [AgentCost(agent_id=r["agent_id"], **_line(r)) for r in rows]

    async def daily(self, days: int = 30, user_id: str | None = None) -> list[DayCost]:
        """Cost per UTC day, newest first; every day of the window is present (zero if idle)."""
        params = self._params(days, user_id)
        found = {r["date"]: r for r in await self._query(SQL_DAILY, params)}
        out = []
        for i in range(days):
            date = _iso_date(params["since"] + (days - 1 - i) * SECONDS_PER_DAY)
            row = found.get(date, {"requests": 0, "total_tokens": 0, "cost": 0})
            out.append(DayCost(date=date, **_line(row)))
        return out

    async def conversations(
        self, days: int = 7, limit: int = 10, user_id: str | None = None
    ) -> list[ConversationCost]:
        """The most expensive conversations."""
        params = self._params(days, user_id, limit=validate_limit(limit))
        rows = await self._query(SQL_CONVERSATIONS, params)
        return [ConversationCost(conversation_id=r["conversation_id"], **_line(r)) for r in rows]

    async def latency(
        self, model: str | None = None, days: int = 30, user_id: str | None = None
    ) -> LatencyReport:
        """p50/p95/p99 (nearest rank) of successful calls' latency, with the sample count."""
        rows = await self._query(SQL_LATENCIES, self._params(days, user_id, model=model))
        values = [r["latency_ms"] for r in rows]  # sorted by the query
        return LatencyReport(
            model, days, len(values),
            nearest_rank(values, 50), nearest_rank(values, 95), nearest_rank(values, 99),
        )


def _iso_date(wall: float) -> str:
    return datetime.fromtimestamp(wall, tz=timezone.utc).date().isoformat()
