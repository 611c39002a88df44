"""Budgets: money units, UTC periods, the global daily state (90% downgrade, 100% block, back to
normal at the UTC day boundary) and once-per-period alerts. Pure logic plus the store's spend."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.catalog import ModelSpec
from runtime.finops.budget import (
    ALL, AlertTracker, Budget, BudgetUsage, Scope, admission, budget_state, blocked_model, effective_chain, to_nusd, to_usd, utc_day_start, utc_month_start,
)

NEW_YEAR_2026 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, the fake clock's wall start (conftest)
DAY = 86_400.0


def spec(output_per_1m: float) -> ModelSpec:
    return ModelSpec(platform="p", id=f"m{output_per_1m}", input_per_1m=1.0, output_per_1m=output_per_1m, context_window=1000)


def test_money_round_trips_exactly_through_nano_dollars():
    assert to_nusd(0.0003) == 300_000 and to_nusd(0.01) == 10_000_000
    assert sum(to_nusd(0.1) for _ in range(10)) == to_nusd(1.0)  # floats would drift
    assert to_usd(to_nusd(0.0123)) == 0.0123
    for bad in (-0.01, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            to_nusd(bad)


def test_utc_periods():
    assert utc_day_start(NEW_YEAR_2026 + DAY - 0.001) == NEW_YEAR_2026
    assert utc_day_start(NEW_YEAR_2026 + DAY) == NEW_YEAR_2026 + DAY
    assert utc_month_start(NEW_YEAR_2026 + 30 * DAY + 5) == NEW_YEAR_2026  # 2026-01-31
    assert utc_month_start(NEW_YEAR_2026 + 31 * DAY) == NEW_YEAR_2026 + 31 * DAY  # 2026-02-01


@given(st.floats(min_value=0, max_value=4e9))
def test_day_start_is_the_midnight_at_or_before(t):
    start = utc_day_start(t)
    assert start <= t < start + DAY and start % DAY == 0


def test_budget_state_thresholds():
    assert budget_state(89.99, 100) == "normal"
    assert budget_state(90.0, 100) == "downgrade"
    assert budget_state(99.99, 100) == "downgrade"
    assert budget_state(100.0, 100) == "block"
    assert budget_state(1e9, None) == "normal"
    assert budget_state(0.0, 0.0) == "block"


def test_effective_chain_and_blocked_models():
    assert effective_chain("code_quality", "normal") == "code_quality"
    assert effective_chain("code_quality", "downgrade") == "code_cost"
    assert effective_chain("chat_speed", "block") == "chat_cost"
    assert effective_chain("reasoning", "downgrade") == "reasoning"
    assert effective_chain("x", "downgrade", twins={"x": "y"}) == "y"
    assert blocked_model(spec(10.0), "block", 5.0) is True
    assert blocked_model(spec(2.5), "block", 5.0) is False
    assert blocked_model(spec(10.0), "downgrade", 5.0) is False


async def test_downgrade_at_90_block_at_100_and_back_to_normal_at_the_utc_day_boundary(store, clock, make_final):
    daily_budget = 1.00

    async def state() -> str:
        spent, reserved = await store.spend(ALL, utc_day_start(clock.time()))
        return budget_state(spent + reserved, daily_budget)

    clock.advance(23 * 3600)  # 23:00 UTC on 2026-01-01
    await store.finalize(make_final("a", cost_usd=0.89, created_at=clock.time()))
    assert await state() == "normal"
    await store.finalize(make_final("b", cost_usd=0.01, created_at=clock.time()))
    assert await state() == "downgrade"
    assert effective_chain("code_quality", await state()) == "code_cost"
    await store.finalize(make_final("c", cost_usd=0.10, created_at=clock.time()))
    assert await state() == "block"
    assert blocked_model(spec(75.0), await state(), output_price_threshold=5.0)

    clock.advance(3600)  # 00:00 UTC on 2026-01-02: a new day, a new budget
    assert await state() == "normal"
    assert effective_chain("code_quality", await state()) == "code_quality"


def usage(limit: float, spent: float, reserved: float = 0.0, name: str = "b", start: float = 0.0) -> BudgetUsage:
    return BudgetUsage(Budget(name, limit, "day", Scope.key("k")), start, to_nusd(spent), to_nusd(reserved))


def test_admission_counts_spent_reserved_and_the_request_itself():
    assert admission([usage(0.01, 0.006, 0.003)], "r", to_nusd(0.001)).request_id == "r"
    refused = admission([usage(1.0, 0.0), usage(0.01, 0.006, 0.003, name="tight")], "r", to_nusd(0.002))
    assert (refused.name, refused.limit, refused.spent, refused.reserved, refused.requested) == (
        "tight", 0.01, 0.006, 0.003, 0.002,
    )


def test_alerts_fire_once_per_budget_per_period():
    tracker = AlertTracker()
    limit = to_nusd(10.0)
    assert tracker.observe("b", 0.0, to_nusd(8.99), limit) == []
    (warning,) = tracker.observe("b", 0.0, to_nusd(9.0), limit)
    assert (warning.level, warning.used_usd, warning.limit_usd, warning.percent) == ("warning", 9.0, 10.0, 90.0)
    assert tracker.observe("b", 0.0, to_nusd(9.5), limit) == []
    assert [a.level for a in tracker.observe("b", 0.0, to_nusd(10.0), limit)] == ["exceeded"]
    assert tracker.observe("b", 0.0, to_nusd(12.0), limit) == []
    assert tracker.observe("b", -DAY, to_nusd(12.0), limit) == []  # a late look at yesterday
    assert [a.level for a in tracker.observe("b", DAY, to_nusd(9.1), limit)] == ["warning"]  # next day
    assert [a.level for a in tracker.observe("other", 0.0, to_nusd(1.0), limit, refused=True)] == ["exceeded"]
    assert tracker.observe("other", 0.0, to_nusd(9.5), limit) == []  # warning implied by exceeded
