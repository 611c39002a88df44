"""Budget logic, pure: money units, UTC periods, the global daily budget state, per-scope
budgets and the alert thresholds. No I/O, no Ray; the wall time always comes from the caller
(an injected clock), so the UTC day boundary is testable.

Money is counted in integer nano-dollars (1 USD = 10**9 nUSD) wherever it is summed or compared:
floats are exact for neither 0.1 nor 0.0003, and a budget check must not drift by a rounding
error after a million additions. Every per-token list price with up to three decimals per 1M
tokens is a whole number of nano-dollars per token, so the ledger's sums are exact. USD floats
appear only at the edges (rows in, reports out).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal, Mapping

from providers.catalog import ModelSpec

NANO_PER_USD = 1_000_000_000
SECONDS_PER_DAY = 86_400

BudgetState = Literal["normal", "downgrade", "block"]
Period = Literal["day", "month"]
AlertLevel = Literal["warning", "exceeded"]

DOWNGRADE_AT = 0.9
BLOCK_AT = 1.0
DEFAULT_TWINS: Mapping[str, str] = {"code_quality": "code_cost", "chat_speed": "chat_cost"}


# ------------------------------------------------------------------------------ money and time


def to_nusd(usd: float) -> int:
    """USD → integer nano-dollars (rounded to the nearest). Rejects NaN, infinities, negatives."""
    if not math.isfinite(usd) or usd < 0:
        raise ValueError(f"an amount of money must be a finite number >= 0, got {usd!r}")
    return round(usd * NANO_PER_USD)


def to_usd(nusd: int) -> float:
    return nusd / NANO_PER_USD


def utc_day_start(wall_time: float) -> float:
    """Start (epoch seconds) of the UTC day containing `wall_time`."""
    return float(math.floor(wall_time / SECONDS_PER_DAY) * SECONDS_PER_DAY)


def utc_month_start(wall_time: float) -> float:
    """Start (epoch seconds) of the UTC calendar month containing `wall_time`."""
    moment = datetime.fromtimestamp(wall_time, tz=timezone.utc)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()


def period_start(period: Period, wall_time: float) -> float:
    if period == "day":
        return utc_day_start(wall_time)
    if period == "month":
        return utc_month_start(wall_time)
    raise ValueError(f"unknown budget period {period!r}")


# ------------------------------------------------------------------------- global daily budget


def budget_state(
    spent_today_usd: float,
    daily_budget_usd: float | None,
    *,
    downgrade_at: float = DOWNGRADE_AT,
    block_at: float = BLOCK_AT,
) -> BudgetState:
    """'normal' below 90% of the daily budget, 'downgrade' from 90%, 'block' from 100%.
    No budget (None) is always 'normal'; a zero budget is always 'block'."""
    if daily_budget_usd is None:
        return "normal"
    if spent_today_usd >= daily_budget_usd * block_at:
        return "block"
    if spent_today_usd >= daily_budget_usd * downgrade_at:
        return "downgrade"
    return "normal"


def effective_chain(
    chain_name: str, state: BudgetState, twins: Mapping[str, str] = DEFAULT_TWINS
) -> str:
    """The chain to use under `state`: a quality/speed chain's cheaper twin once the day's budget
    is at 90%. Nothing is rewritten: tomorrow's state is 'normal' again and so is the chain."""
    if state == "normal":
        return chain_name
    return twins.get(chain_name, chain_name)


def blocked_model(model_spec: ModelSpec, state: BudgetState, output_price_threshold: float) -> bool:
    """Over budget, models whose output price (USD per 1M tokens) is above the threshold are
    blocked; cheaper ones keep serving."""
    return state == "block" and model_spec.output_per_1m > output_price_threshold


# ---------------------------------------------------------------------- scoped budgets (keys)


@dataclass(frozen=True, slots=True)
class Scope:
    """Whose spending a budget counts: every call ('all'), one user's, or one API key's."""

    kind: Literal["all", "user", "key"]
    id: str = ""

    @classmethod
    def key(cls, key_id: str) -> "Scope":
        return cls("key", key_id)

    @classmethod
    def user(cls, user_id: str) -> "Scope":
        return cls("user", user_id)


ALL = Scope("all")


@dataclass(frozen=True, slots=True)
class Budget:
    name: str
    limit_usd: float
    period: Period
    scope: Scope = ALL

    def __post_init__(self) -> None:
        to_nusd(self.limit_usd)  # validates
        period_start(self.period, 0.0)  # validates

    @property
    def limit_nusd(self) -> int:
        return to_nusd(self.limit_usd)


@dataclass(frozen=True, slots=True)
class BudgetUsage:
    """A budget's spending in its current period, before the request being admitted."""

    budget: Budget
    period_start: float
    spent_nusd: int
    reserved_nusd: int

    @property
    def used_nusd(self) -> int:
        return self.spent_nusd + self.reserved_nusd


@dataclass(frozen=True, slots=True)
class Admitted:
    request_id: str
    usage: tuple[BudgetUsage, ...] = ()
    reserved_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetExceeded:
    """A refusal that names the budget: spent + reserved + requested would pass the limit."""

    name: str
    limit: float
    spent: float
    reserved: float
    requested: float
    period: Period
    usage: tuple[BudgetUsage, ...] = ()


def admission(usages: list[BudgetUsage], request_id: str, requested_nusd: int) -> Admitted | BudgetExceeded:
    """Admit iff, for every budget, spent + reserved + the request's own reservation <= limit."""
    for u in usages:
        if u.used_nusd + requested_nusd > u.budget.limit_nusd:
            return BudgetExceeded(
                name=u.budget.name,
                limit=u.budget.limit_usd,
                spent=to_usd(u.spent_nusd),
                reserved=to_usd(u.reserved_nusd),
                requested=to_usd(requested_nusd),
                period=u.budget.period,
                usage=tuple(usages),
            )
    return Admitted(request_id, tuple(usages), to_usd(requested_nusd))


# ---------------------------------------------------------------------------------- alerts


@dataclass(frozen=True, slots=True)
class Alert:
    budget: str
    level: AlertLevel
    used_usd: float
    limit_usd: float
    period_start: float

    @property
    def percent(self) -> float:
        return 100.0 * self.used_usd / self.limit_usd if self.limit_usd else math.inf


@dataclass
class AlertTracker:
    """Decides which alerts to send: 'warning' at 90% and 'exceeded' at 100% (or at the first
    refusal), each at most once per budget per period. State is one entry per budget name."""

    warn_at: float = DOWNGRADE_AT
    _sent: dict[str, tuple[float, set[AlertLevel]]] = field(default_factory=dict)

    def observe(
        self, name: str, period_start: float, used_nusd: int, limit_nusd: int, *, refused: bool = False
    ) -> list[Alert]:
        start, sent = self._sent.get(name, (period_start, set()))
        if period_start > start:
            start, sent = period_start, set()
        elif period_start < start:
            return []  # a late observation of a period already over
        crossed: list[AlertLevel] = []
        if refused or used_nusd >= limit_nusd:
            crossed = ["warning", "exceeded"]
        elif used_nusd >= limit_nusd * self.warn_at:
            crossed = ["warning"]
        fresh = [lvl for lvl in crossed if lvl not in sent]
        sent.update(crossed)
        if "exceeded" in fresh:
            fresh = ["exceeded"]  # jumping straight past 100% is one alert, not two
        self._sent[name] = (start, sent)
        return [Alert(name, lvl, to_usd(used_nusd), to_usd(limit_nusd), start) for lvl in fresh]

    def observe_usage(self, usage: BudgetUsage, *, refused: bool = False) -> list[Alert]:
        return self.observe(
            usage.budget.name, usage.period_start, usage.used_nusd, usage.budget.limit_nusd, refused=refused
        )
