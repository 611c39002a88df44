"""Per-key budgets by reservation through the HTTP API, and the global daily budget's 90%
downgrade and 100% block on a fake clock, reverting at the UTC day boundary."""
from __future__ import annotations

import asyncio

import pytest

from runtime.finops.budget import Scope
from runtime.finops.errors import BudgetRefusedError
from runtime.core.budget_routing import budget_plan
from runtime.config import load_config
from runtime.finops.ledger_store import FinalRow
from runtime.core.routing import plan_for_model_field, plan_for_use_case

CFG = load_config()


async def test_100_concurrent_requests_never_overspend_a_one_cent_daily_key_budget(h):
    made = await h.new_key("alice", daily_budget_usd=0.01)
    key, key_id = made["key"], made["key_id"]
    # bulk -> gemini flash-lite; 1000 output tokens at $0.40/1M ~ $0.0004 reserved per request
    responses = await asyncio.gather(*(h.route(key, query=f"question {i}") for i in range(100)))
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(ok) + len(refused) == 100 and 0 < len(ok) < 100
    assert {r.json()["error"]["budget"] for r in refused} == {f"key:{key_id}:daily"}
    assert all(f"key:{key_id}:daily" in r.json()["error"]["message"] for r in refused)
    spent, reserved = await h.ledger.spend(Scope.key(key_id), h.clock.time())
    assert reserved == 0.0 and 0 < spent <= 0.01
    assert spent == pytest.approx(sum(r.json()["cost_usd"] for r in ok), abs=1e-9)
    assert len(h.pool.calls) == len(ok)  # a refused request never reached a provider
    # every request has exactly one row: the served ones charged, the refused ones at zero
    summary = (await h.http.get("/api/ai/costs/summary", headers=h.bearer(key))).json()
    assert summary["total"]["requests"] == 100 and summary["total"]["errors"] == len(refused)


async def test_the_pending_row_is_committed_before_the_provider_call_and_finalized_after(h):
    key = (await h.new_key("bob", daily_budget_usd=1.0))["key"]
    seen = {}

    async def look(platform, request):
        rows = await h.ledger.spend(Scope.user("bob"), h.clock.time())
        seen[request.request_id] = rows

    h.pool.on_call = look
    r = await h.route(key)
    assert r.status_code == 200
    (spent, reserved), = seen.values()
    assert spent == 0.0 and reserved > r.json()["cost_usd"] > 0  # reserved the maximum first
    assert await h.ledger.spend(Scope.user("bob"), h.clock.time()) == (pytest.approx(r.json()["cost_usd"]), 0.0)


async def test_no_pending_row_no_call_when_the_ledger_is_unreachable(h):
    from runtime.finops.errors import LedgerUnavailableError

    async def unreachable(row, budgets):
        raise LedgerUnavailableError("the ledger did not answer")

    h.ledger.admit_and_open_pending = unreachable
    r = await h.route("sk-sb-admin-finops-http")
    assert r.status_code == 503 and r.json()["error"]["type"] == "ledger_unavailable"
    assert h.pool.calls == []


async def test_a_ledger_lost_after_the_call_leaves_the_row_pending_and_charged_at_its_reservation(h, clock):
    from runtime.finops.errors import LedgerUnavailableError

    async def lost(row):
        raise LedgerUnavailableError("gone")

    real_finalize, h.ledger.finalize = h.ledger.finalize, lost
    r = await h.route("sk-sb-admin-finops-http")
    assert r.status_code == 200  # the answer was paid for: it is delivered
    h.ledger.finalize = real_finalize
    spent, reserved = await h.ledger.spend(Scope.user("admin"), clock.time())
    assert spent == 0.0 and reserved > r.json()["cost_usd"]
    clock.advance(CFG.server.request_timeout_s + 1)
    await h.ledger.recover(CFG.server.request_timeout_s)  # (the actor also does it by itself)
    assert await h.ledger.spend(Scope.user("admin"), clock.time() - 200) == (pytest.approx(reserved), 0.0)


async def test_a_failed_call_is_finalized_at_zero_and_frees_its_reservation(h):
    key = (await h.new_key("carl", daily_budget_usd=1.0))["key"]
    h.pool.fail = set(CFG.platforms)
    r = await h.route(key)
    assert r.status_code == 503
    assert await h.ledger.spend(Scope.user("carl"), h.clock.time()) == (0.0, 0.0)


async def test_a_call_sent_and_never_answered_is_charged_at_its_worst_case_as_unknown(h):
    """A read timeout: the vendor may have run (and billed) the call after we stopped waiting,
    so the row is `unknown` and charged at the worst case of each such attempt, never at 0."""
    key = (await h.new_key("eve", daily_budget_usd=1.0))["key"]
    h.pool.time_out = set(CFG.platforms)
    r = await h.route(key)
    assert r.status_code in (502, 503, 504)
    steps = [(p, m) for p, m, _ in h.pool.calls]
    assert len(steps) == 3  # every step of the bulk chain was tried
    row = await ledger_row(h, h.pool.calls[0][2])
    worst = sum(worst_case(p, m, 1000) for p, m in steps)
    assert row["status"] == "unknown" and row["estimated_cost"] == pytest.approx(worst * 1e9, abs=len(steps))
    assert await h.ledger.spend(Scope.user("eve"), h.clock.time()) == (pytest.approx(worst), 0.0)
    assert (await ledger_row(h, h.pool.calls[0][2], "ai_metrics"))["success"] == 0


async def test_an_answer_after_an_unanswered_attempt_adds_that_attempts_worst_case(h):
    key = (await h.new_key("fay", daily_budget_usd=1.0))["key"]
    head = CFG.chains["bulk"][0].platform
    h.pool.time_out = {head}
    r = await h.route(key)
    assert r.status_code == 200
    (p0, m0, request_id), (p1, m1, _) = h.pool.calls
    row = await ledger_row(h, request_id)
    expected = worst_case(p0, m0, 1000) + r.json()["cost_usd"]
    assert row["status"] == "unknown" and row["platform"] == p1
    assert row["estimated_cost"] == pytest.approx(expected * 1e9, abs=2)
    assert (await ledger_row(h, request_id, "ai_metrics"))["success"] == 1  # served: a success


def worst_case(platform: str, model: str, max_tokens: int) -> float:
    from providers.tokens import estimate_request_tokens
    from providers.types import ChatRequest, Message

    spec = CFG.catalog().get(platform, model)
    request = ChatRequest((Message("user", "What is a CRDT?"),), max_tokens=max_tokens)
    return spec.cost_usd(estimate_request_tokens(request, spec), max_tokens)


async def ledger_row(h, request_id: str, table: str = "agent_token_usage") -> dict:
    import sqlite3

    assert table in ("agent_token_usage", "ai_metrics")
    conn = sqlite3.connect(h.db_path)
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute(f"SELECT * FROM {table} WHERE request_id = ?", (request_id,)).fetchone())
    finally:
        conn.close()


async def test_streams_book_a_pending_row_and_finalize_it(h):
    key = (await h.new_key("dora", daily_budget_usd=1.0))["key"]
    seen = []

    async def look(platform, request):
        seen.append(await h.ledger.spend(Scope.user("dora"), h.clock.time()))

    h.pool.on_call = look
    r = await h.http.post("/v1/chat/completions", headers=h.bearer(key), json={
        "model": "switchboard/bulk", "stream": True, "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200 and "streamed" in r.text
    assert seen[0][0] == 0.0 and seen[0][1] > 0  # reserved while streaming
    spent, reserved = await h.ledger.spend(Scope.user("dora"), h.clock.time())
    assert reserved == 0.0 and spent > 0


# ---------------------------------------------------------------------- global daily budget


def with_daily_budget(usd: float):
    return CFG.model_copy(update={"budgets": CFG.budgets.model_copy(update={"daily_usd": usd})})


def test_budget_plan_is_pure_and_names_the_budget():
    code = plan_for_use_case(CFG, CFG.catalog(), "code", "quality", 10, 10)
    assert budget_plan(code, "normal", CFG) is code
    assert budget_plan(code, "downgrade", CFG).chain == "code_cost"
    blocked = budget_plan(code, "block", CFG)
    assert blocked.chain == "code_cost"
    assert all(s.model.output_per_1m <= CFG.budgets.output_price_threshold_per_1m for s in blocked.steps)
    gpt4o = plan_for_model_field(CFG, CFG.catalog(), "gpt-4o", 10, 10)
    assert budget_plan(gpt4o, "downgrade", CFG) is gpt4o
    with pytest.raises(BudgetRefusedError) as info:
        budget_plan(gpt4o, "block", CFG)
    assert info.value.budget == "global:daily"


async def spend_today(h, usd: float, rid: str) -> None:
    await h.ledger.record(FinalRow(request_id=rid, user_id="ops", created_at=h.clock.time(),
                                   platform="openai", model="gpt-4o", cost_usd=usd))


async def test_global_budget_downgrades_at_90_blocks_at_100_and_reverts_at_the_utc_day(make_harness, clock):
    h = make_harness(with_daily_budget(1.0))
    admin = h.admin

    async def served(body):
        r = await h.http.post("/api/ai/route", json={"query": "q", "max_tokens": 50, **body}, headers=admin)
        return r.status_code, r.json().get("platform"), r.json().get("chain")

    assert await served({"use_case": "code", "priority": "quality"}) == (200, "openai", "code_quality")

    await spend_today(h, 0.9, "spent-90")
    assert (await served({"use_case": "code", "priority": "quality"}))[1] == "openai"  # state cached < ttl
    clock.advance(CFG.budgets.state_ttl_s)
    assert await served({"use_case": "code", "priority": "quality"}) == (200, "gemini", "code_cost")
    assert await served({"use_case": "chat", "priority": "speed"}) == (200, "gemini", "chat_cost")
    assert (await served({"use_case": "reasoning"}))[0] == 200  # no twin: unchanged

    await spend_today(h, 0.1, "spent-100")
    clock.advance(CFG.budgets.state_ttl_s)
    r = await h.http.post("/v1/chat/completions", headers=admin, json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10})
    assert r.status_code == 402 and r.json()["error"]["budget"] == "global:daily"
    status, platform, _ = await served({"use_case": "reasoning"})  # sonnet, gpt-4o: all expensive
    assert status == 402
    assert (await served({"use_case": "bulk"}))[0] == 200  # cheap models keep serving

    clock.advance(12 * 3600)  # past midnight UTC: a new day, a new budget
    assert await served({"use_case": "code", "priority": "quality"}) == (200, "openai", "code_quality")
    r = await h.http.post("/v1/chat/completions", headers=admin, json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10})
    assert r.status_code == 200


async def test_the_budget_state_is_read_once_per_ttl_and_once_at_a_time(clock):
    from runtime.core.budget_routing import BudgetStateCache

    reads = []
    gate = asyncio.Event()

    async def fetch():
        reads.append(clock.time())
        await gate.wait()
        return "downgrade"

    cache = BudgetStateCache(fetch, ttl_s=5.0, clock=clock)
    waiting = [asyncio.ensure_future(cache.state()) for _ in range(20)]
    await asyncio.sleep(0)
    gate.set()
    assert set(await asyncio.gather(*waiting)) == {"downgrade"} and len(reads) == 1
    clock.advance(4.9)
    assert await cache.state() == "downgrade" and len(reads) == 1
    clock.advance(0.1)
    await cache.state()
    assert len(reads) == 2


async def test_an_unreadable_budget_state_keeps_the_days_last_state_and_resets_at_midnight(clock):
    from runtime.core.budget_routing import BudgetStateCache

    answers = iter(["block"])

    async def fetch():
        try:
            return next(answers)
        except StopIteration:
            raise RuntimeError("ledger down") from None

    cache = BudgetStateCache(fetch, ttl_s=5.0, clock=clock)
    assert await cache.state() == "block"
    clock.advance(5.0)
    assert await cache.state() == "block"  # same UTC day: the last known state
    clock.advance(12 * 3600)
    assert await cache.state() == "normal"  # a new day starts normal
