"""Per-key budgets by reservation, under concurrency, and the alerts they raise (structlog
events and a webhook POST to a loopback server). Drives LedgerActor as a plain class."""
from __future__ import annotations

import asyncio
import json

import pytest
from structlog.testing import capture_logs

from runtime.finops.budget import Admitted, Budget, BudgetExceeded, Scope, to_nusd
from runtime.finops.ledger import LedgerActor

NEW_YEAR_2026 = 1_767_225_600.0  # the fake clock's wall start (conftest)
DAY = 86_400.0


def key_budget(limit: float, period: str = "day", key_id: str = "key_1") -> Budget:
    return Budget(f"key:{key_id}:{'daily' if period == 'day' else 'monthly'}", limit, period, Scope.key(key_id))


async def test_100_concurrent_admissions_never_exceed_a_one_cent_daily_budget(store, make_pending):
    budget = key_budget(0.01)
    reservation = 0.0003

    results = await asyncio.gather(
        *(
            store.admit_and_open_pending(make_pending(f"r{i}", key_id="key_1", reserved_usd=reservation), [budget])
            for i in range(100)
        )
    )
    admitted = [r for r in results if isinstance(r, Admitted)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert len(admitted) == 33  # 33 x $0.0003 = $0.0099; a 34th would make $0.0102
    assert len(admitted) * to_nusd(reservation) <= budget.limit_nusd
    assert len(refused) == 67 and {r.name for r in refused} == {"key:key_1:daily"}
    assert all(r.limit == 0.01 and r.requested == reservation for r in refused)
    assert await store.spend(Scope.key("key_1"), NEW_YEAR_2026) == (0.0, pytest.approx(0.0099, abs=1e-12))
    assert store.stats.commits < 10  # admissions are group-committed too


async def test_finalized_cost_frees_the_unused_reservation(store, make_pending, make_final):
    budget = key_budget(0.01)
    assert isinstance(await store.admit_and_open_pending(make_pending("a", key_id="key_1", reserved_usd=0.008), [budget]), Admitted)
    assert isinstance(await store.admit_and_open_pending(make_pending("b", key_id="key_1", reserved_usd=0.003), [budget]), BudgetExceeded)
    await store.finalize(make_final("a", key_id="key_1", cost_usd=0.002))
    assert isinstance(await store.admit_and_open_pending(make_pending("b", key_id="key_1", reserved_usd=0.003), [budget]), Admitted)


async def test_a_retried_admission_reserves_once(store, make_pending):
    budget = key_budget(0.01)
    for _ in range(3):
        assert isinstance(await store.admit_and_open_pending(make_pending("same", key_id="key_1", reserved_usd=0.006), [budget]), Admitted)
    assert await store.spend(Scope.key("key_1"), NEW_YEAR_2026) == (0.0, 0.006)


async def test_daily_budget_resets_at_the_utc_day_but_the_monthly_one_does_not(store, make_pending):
    budgets = [key_budget(0.01), key_budget(0.015, "month")]
    first = await store.admit_and_open_pending(make_pending("d1", key_id="key_1", reserved_usd=0.01), budgets)
    assert isinstance(first, Admitted)
    next_day = NEW_YEAR_2026 + DAY + 60
    refused = await store.admit_and_open_pending(make_pending("d2", key_id="key_1", reserved_usd=0.01, created_at=next_day), budgets)
    assert isinstance(refused, BudgetExceeded) and refused.name == "key:key_1:monthly"
    assert (refused.spent, refused.reserved, refused.period) == (0.0, 0.01, "month")
    small = await store.admit_and_open_pending(make_pending("d3", key_id="key_1", reserved_usd=0.005, created_at=next_day), budgets)
    assert isinstance(small, Admitted)
    other = [key_budget(0.01, key_id="key_2")]
    other_key = await store.admit_and_open_pending(make_pending("o", key_id="key_2", reserved_usd=0.01), other)
    assert isinstance(other_key, Admitted)  # key_1's spending is not key_2's


async def test_a_budget_that_does_not_cover_the_row_is_a_caller_error(store, make_pending):
    with pytest.raises(ValueError, match="does not cover"):
        await store.admit_and_open_pending(make_pending("r", key_id="key_2"), [key_budget(1.0, key_id="key_1")])
    with pytest.raises(ValueError, match="does not cover"):
        await store.admit_and_open_pending(make_pending("r", user_id="bob"), [Budget("u", 1.0, "day", Scope.user("alice"))])


# ------------------------------------------------------------------------------------- alerts


class WebhookSink:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.received = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        self.bodies.append(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()
        self.received.set()


@pytest.fixture
async def webhook():
    sink = WebhookSink()
    server = await asyncio.start_server(sink.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield sink, f"http://127.0.0.1:{port}/alerts"
    server.close()
    await server.wait_closed()


async def test_key_budget_alerts_at_90_and_100_percent_once_each_and_post_to_the_webhook(db_path, clock, make_pending, webhook):
    sink, url = webhook
    actor = LedgerActor(db_path, clock, alert_webhook_url=url)
    budget = key_budget(0.01)
    try:
        with capture_logs() as logs:
            for i in range(4):  # 0.003 → 30%, 60%, 90% (warning), then refused (exceeded)
                await actor.admit_and_open_pending(make_pending(f"r{i}", key_id="key_1", reserved_usd=0.003), [budget])
            await actor.admit_and_open_pending(make_pending("r9", key_id="key_1", reserved_usd=0.003), [budget])
            await actor.drain()
        alerts = [(e["budget"], e["level"]) for e in logs if e["event"] == "finops.budget_alert"]
        assert alerts == [("key:key_1:daily", "warning"), ("key:key_1:daily", "exceeded")]
        assert [(b["type"], b["budget"], b["level"]) for b in sink.bodies] == [
            ("budget_alert", "key:key_1:daily", "warning"), ("budget_alert", "key:key_1:daily", "exceeded"),
        ]
        assert sink.bodies[0]["used_usd"] == pytest.approx(0.009) and sink.bodies[0]["limit_usd"] == 0.01
    finally:
        await actor.close()


async def test_global_daily_state_alerts_and_reverts_on_the_fake_clock(db_path, clock, make_final):
    actor = LedgerActor(db_path, clock)
    try:
        with capture_logs() as logs:
            await actor.record(make_final("a", cost_usd=0.95, created_at=clock.time()))
            assert await actor.budget_state(1.0) == "downgrade"
            assert await actor.budget_state(1.0) == "downgrade"
            await actor.record(make_final("b", cost_usd=0.05, created_at=clock.time()))
            assert await actor.budget_state(1.0) == "block"
            clock.advance(DAY)
            assert await actor.budget_state(1.0) == "normal"
            assert await actor.budget_state(None) == "normal"
        levels = [e["level"] for e in logs if e["event"] == "finops.budget_alert"]
        assert levels == ["warning", "exceeded"]
    finally:
        await actor.close()


async def test_a_failing_webhook_is_logged_and_never_fails_the_call(db_path, clock, make_pending):
    actor = LedgerActor(db_path, clock, alert_webhook_url="http://127.0.0.1:9/unreachable")
    try:
        with capture_logs() as logs:
            result = await actor.admit_and_open_pending(make_pending("r", key_id="k", reserved_usd=0.02), [key_budget(0.01, key_id="k")])
            await actor.drain()
        assert isinstance(result, BudgetExceeded)
        assert any(e["event"] == "finops.alert_webhook_failed" for e in logs)
    finally:
        await actor.close()
