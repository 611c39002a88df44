"""Reports on a known data set, with exact numbers; percentiles over sorted data; validation."""
from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.finops.reports import nearest_rank, validate_days

NEW_YEAR_2026 = 1_767_225_600.0  # the fake clock's wall start (conftest)
DAY = 86_400.0
TODAY = NEW_YEAR_2026 + 2 * DAY + 3600  # 2026-01-03 01:00 UTC
YESTERDAY = TODAY - DAY


@pytest.fixture
async def data(store, clock, make_final, make_pending):
    """Latencies are inserted unsorted on purpose."""
    clock.advance(TODAY + 11 * 3600 - clock.time())  # the clock reads 2026-01-03 12:00 UTC
    gpt, sonnet, llama = ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("groq", "llama-3.1-8b-instant")

    def row(rid, user, where, **kw):
        return make_final(rid, user_id=user, platform=where[0], model=where[1], **{"created_at": TODAY, **kw})

    for r in [
        row("r1", "alice", gpt, agent_id="reviewer", conversation_id="c1", input_tokens=1000, output_tokens=500, cost_usd=0.0075, latency_ms=100),
        row("r2", "alice", sonnet, agent_id="reviewer", conversation_id="c1", input_tokens=2000, output_tokens=1000, cost_usd=0.021, latency_ms=300, fallback_used=True),
        row("r3", "bob", llama, conversation_id="c2", input_tokens=100, output_tokens=100, cost_usd=0.0001, latency_ms=50),
        row("r4", "bob", llama, status="cached", cache_hit=True, saved_usd=0.0001, latency_ms=1),
        row("r5", "alice", gpt, status="error", error_kind="timeout", latency_ms=0),
        row("r7", "alice", gpt, conversation_id="c1", input_tokens=400, output_tokens=100, cost_usd=0.002, latency_ms=200, created_at=YESTERDAY),
        row("r8", "bob", gpt, conversation_id="c2", input_tokens=1, output_tokens=1, cost_usd=1.0, latency_ms=9999, created_at=NEW_YEAR_2026 - 60),
    ]:
        await store.record(r)
    await store.open_pending(make_pending("r6", user_id="alice", reserved_usd=0.5, created_at=TODAY))
    return store.reports


async def test_summary_totals_and_breakdowns(data):
    s = await data.summary(days=3)
    t = s.total
    assert (t.requests, t.errors, t.cost_usd, t.cache_hits, t.saved_usd) == (6, 1, 0.0306, 1, 0.0001)
    assert (t.input_tokens, t.output_tokens, t.total_tokens) == (3500, 1700, 5200)
    assert [(p.platform, p.requests, p.total_tokens, p.cost_usd) for p in s.by_platform] == [
        ("anthropic", 1, 3000, 0.021), ("openai", 3, 2000, 0.0095), ("groq", 2, 200, 0.0001),
    ]
    assert [(m.model, m.requests, m.cost_usd) for m in s.by_model] == [
        ("claude-sonnet-4-5", 1, 0.021), ("gpt-4o", 3, 0.0095), ("llama-3.1-8b-instant", 2, 0.0001),
    ]
    assert s.by_model[1].avg_cost_usd == pytest.approx(0.0095 / 3)


async def test_a_user_sees_only_their_own_costs(data):
    bob = await data.summary("bob", days=3)
    assert (bob.user_id, bob.total.requests, bob.total.cost_usd) == ("bob", 2, 0.0001)
    assert [p.platform for p in bob.by_platform] == ["groq"]
    assert [c.conversation_id for c in await data.conversations(days=3, user_id="bob")] == ["c2"]
    assert (await data.latency(days=3, user_id="bob")).samples == 2
    assert [d.cost_usd for d in await data.daily(days=3, user_id="bob")] == [0.0001, 0.0, 0.0]


async def test_by_user_and_by_agent(data):
    assert [(u.user_id, u.requests, u.total_tokens, u.cost_usd) for u in await data.by_user(days=3)] == [
        ("alice", 4, 5000, 0.0305), ("bob", 2, 200, 0.0001),
    ]
    assert [(u.user_id, u.cost_usd) for u in await data.by_user(days=4)] == [("bob", 1.0001), ("alice", 0.0305)]
    assert [(u.user_id, u.requests) for u in await data.by_user("alice", days=3)] == [("alice", 4)]
    agents = await data.by_agent(days=3)
    assert [(a.agent_id, a.requests, a.total_tokens, a.cost_usd) for a in agents] == [
        ("reviewer", 2, 4500, 0.0285), ("orchestrator", 4, 700, 0.0021),
    ]
    assert agents[0].avg_cost_usd == pytest.approx(0.01425)


async def test_daily_is_per_utc_day_newest_first_with_idle_days(data):
    days = await data.daily(days=4)
    assert [(d.date, d.requests, d.cost_usd) for d in days] == [
        ("2026-01-03", 5, 0.0286), ("2026-01-02", 1, 0.002), ("2026-01-01", 0, 0.0), ("2025-12-31", 1, 1.0),
    ]
    assert [d.date for d in await data.daily(days=1)] == ["2026-01-03"]


async def test_most_expensive_conversations(data):
    convs = await data.conversations(days=3)
    assert [(c.conversation_id, c.requests, c.total_tokens, c.cost_usd) for c in convs] == [
        ("c1", 3, 5000, 0.0305), ("c2", 1, 200, 0.0001),
    ]
    assert [c.conversation_id for c in await data.conversations(days=4, limit=1)] == ["c2"]  # r8 costs $1


async def test_latency_percentiles_are_nearest_rank_over_sorted_successes(data):
    everything = await data.latency(days=3)  # successes only: 1, 50, 100, 200, 300
    assert (everything.samples, everything.p50_ms, everything.p95_ms, everything.p99_ms) == (5, 100, 300, 300)
    gpt = await data.latency("gpt-4o", days=3)  # 100, 200 (r5 failed)
    assert (gpt.model, gpt.samples, gpt.p50_ms, gpt.p95_ms) == ("gpt-4o", 2, 100, 200)
    nothing = await data.latency("no-such-model", days=3)
    assert (nothing.samples, nothing.p50_ms, nothing.p99_ms) == (0, None, None)


@pytest.mark.parametrize("days", [0, -1, 367, True, 1.5, "30", None])
async def test_days_must_be_an_int_from_1_to_366(data, days):
    for call in (
        lambda: data.summary(days=days), lambda: data.by_user(days=days), lambda: data.daily(days=days),
        lambda: data.by_agent(days=days), lambda: data.conversations(days=days), lambda: data.latency(days=days),
    ):
        with pytest.raises(ValueError, match="days"):
            await call()


@pytest.mark.parametrize("limit", [0, 1001, True, 2.0])
async def test_conversation_limit_is_validated(data, limit):
    with pytest.raises(ValueError, match="limit"):
        await data.conversations(days=3, limit=limit)


def test_days_bounds_are_inclusive():
    assert validate_days(1) == 1 and validate_days(366) == 366


@given(st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200), st.integers(1, 100))
def test_nearest_rank_is_a_sample_with_p_percent_at_or_below_it(values, p):
    ordered = sorted(values)
    value = nearest_rank(ordered, p)
    n = len(ordered)
    assert value in ordered
    assert sum(v <= value for v in ordered) >= p / 100 * n
    assert sum(v < value for v in ordered) < p / 100 * n


def test_nearest_rank_small_cases():
    assert nearest_rank([], 50) is None
    assert nearest_rank([7.0], 1) == nearest_rank([7.0], 100) == 7.0
    assert nearest_rank([1, 2, 3, 4], 50) == 2 and nearest_rank([1, 2, 3, 4], 51) == 3
    assert nearest_rank(list(range(1, 101)), 99) == 99
    with pytest.raises(ValueError):
        nearest_rank([1.0], 0)
    assert math.isclose(nearest_rank([0.5, 1.5], 100), 1.5)
