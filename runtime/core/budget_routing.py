"""The global daily budget where plans are made: a replica-side cache of the ledger's budget
state, and the pure rule that turns a plan into the plan the budget allows.

- `normal`: the plan as made.
- `downgrade` (>= 90% of the day's budget): a quality/speed chain routes as its cost twin
  (`budget.effective_chain`) until the UTC day ends. Nothing is rewritten: the state is computed
  from the ledger per UTC day, so tomorrow's plans are `normal` again.
- `block` (>= 100%): the twin as above, minus every model whose output price exceeds
  `budgets.output_price_threshold_per_1m`; if nothing is left, `BudgetRefusedError` (HTTP 402
  naming the budget) before any call.

The state is cached in the replica for `budgets.state_ttl_s` (one actor hop per few seconds,
not per request) and never across a UTC day boundary (injected clock).
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import BudgetState, blocked_model, effective_chain, utc_day_start
from runtime.finops.errors import BudgetRefusedError
from runtime.config import Config
from runtime.core.routing import RoutePlan, chain_steps

GLOBAL_DAILY = "global:daily"

log = structlog.get_logger("switchboard.budget")


def budget_plan(plan: RoutePlan, state: BudgetState, config: Config) -> RoutePlan:
    """The plan the global daily budget allows under `state` (pure)."""
    if state == "normal":
        return plan
    twin = effective_chain(plan.chain, state)
    if twin != plan.chain and twin in config.chains:
        plan = RoutePlan(twin, chain_steps(config, config.catalog(), twin), plan.use_case, plan.priority)
    if state != "block":
        return plan
    threshold = config.budgets.output_price_threshold_per_1m
    steps = tuple(s for s in plan.steps if not blocked_model(s.model, state, threshold))
    if not steps:
        names = ", ".join(f"{s.platform}/{s.model.id}" for s in plan.steps)
        raise BudgetRefusedError(
            GLOBAL_DAILY,
            f"the global daily budget (${config.budgets.daily_usd}) is spent: models with an output "
            f"price above ${threshold}/1M tokens are refused until the UTC day ends ({names})",
            limit_usd=config.budgets.daily_usd,
        )
    return plan if len(steps) == len(plan.steps) else RoutePlan(plan.chain, steps, plan.use_case, plan.priority)


@dataclass
class BudgetStateCache:
    """The global budget state as last read from the ledger, trusted for `ttl_s` and only
    within the UTC day it was read in. If the ledger cannot be read, the last state of the
    same day is kept for another `ttl_s` (per-key budgets are enforced by reservation
    regardless, and a request still needs the ledger for its pending row)."""

    fetch: Callable[[], Awaitable[BudgetState]]
    ttl_s: float = 5.0
    clock: Clock = SYSTEM_CLOCK
    _state: BudgetState = "normal"
    _read_at: float | None = None
    _day: float | None = None
    _refresh: "asyncio.Task[BudgetState] | None" = field(default=None, repr=False)

    async def state(self) -> BudgetState:
        now_mono, day = self.clock.monotonic(), utc_day_start(self.clock.time())
        fresh = self._read_at is not None and now_mono - self._read_at < self.ttl_s and day == self._day
        if fresh:
            return self._state
        if self._refresh is None:  # one read per replica at a time, however many requests wait
            self._refresh = asyncio.get_running_loop().create_task(self._read(now_mono, day))
        refresh = self._refresh
        try:
            return await asyncio.shield(refresh)
        finally:
            if refresh.done() and self._refresh is refresh:
                self._refresh = None

    async def _read(self, now_mono: float, day: float) -> BudgetState:
        try:
            state = await self.fetch()
        except Exception as exc:  # noqa: BLE001 - keep routing on the last known state
            log.warning("finops.budget_state_unavailable", error=type(exc).__name__)
            state = self._state if day == self._day else "normal"  # retried after ttl_s
        self._state, self._read_at, self._day = state, now_mono, day
        return state
