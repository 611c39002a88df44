"""The cost reports over HTTP: a user key sees only its own costs, reading another user's is
403, and hostile parameters get a 422 naming them or a correct empty answer, never a 500."""
from __future__ import annotations

from urllib.parse import quote

import pytest

from runtime.finops.ledger_store import FinalRow

REPORTS = ["/api/ai/costs/summary", "/api/ai/costs/daily", "/api/ai/costs/by-agent",
           "/api/ai/costs/conversations", "/api/ai/metrics/latency", "/api/ai/costs/by-user/alice"]


@pytest.fixture
async def two_users(h):
    alice = await h.new_key("alice", agent="reviewer")
    bob = await h.new_key("bob")
    for i, (user, cost) in enumerate([("alice", 0.25), ("alice", 0.5), ("bob", 2.0)]):
        await h.ledger.record(FinalRow(
            request_id=f"seed-{i}", user_id=user, created_at=h.clock.time() - 60, platform="openai",
            model="gpt-4o", cost_usd=cost, latency_ms=100.0 * (i + 1), conversation_id=f"conv-{user}",
            agent_id="reviewer" if user == "alice" else "orchestrator"))
    return alice["key"], bob["key"]


async def test_a_user_key_sees_only_its_own_costs(h, two_users):
    alice, _ = two_users
    summary = (await h.http.get("/api/ai/costs/summary", headers=h.bearer(alice))).json()
    assert summary["user_id"] == "alice" and summary["total"]["cost_usd"] == pytest.approx(0.75)
    admin = (await h.http.get("/api/ai/costs/summary", headers=h.admin)).json()
    assert admin["user_id"] is None and admin["total"]["cost_usd"] == pytest.approx(2.75)
    convs = (await h.http.get("/api/ai/costs/conversations", headers=h.bearer(alice))).json()
    assert [c["conversation_id"] for c in convs["conversations"]] == ["conv-alice"]
    agents = (await h.http.get("/api/ai/costs/by-agent", headers=h.bearer(alice))).json()["agents"]
    assert [a["agent_id"] for a in agents] == ["reviewer"]
    daily = (await h.http.get("/api/ai/costs/daily?days=3", headers=h.bearer(alice))).json()["daily"]
    assert len(daily) == 3 and daily[0]["cost_usd"] == pytest.approx(0.75)
    latency = (await h.http.get("/api/ai/metrics/latency?model=gpt-4o", headers=h.bearer(alice))).json()
    assert latency["samples"] == 2 and latency["p50_ms"] == 100.0 and latency["p99_ms"] == 200.0


async def test_reading_another_users_costs_is_403_but_ones_own_and_the_admin_are_fine(h, two_users):
    alice, bob = two_users
    r = await h.http.get("/api/ai/costs/by-user/bob", headers=h.bearer(alice))
    assert r.status_code == 403 and r.json()["error"]["field"] == "user_id"
    own = (await h.http.get("/api/ai/costs/by-user/alice?days=7", headers=h.bearer(alice))).json()
    assert [u["user_id"] for u in own["users"]] == ["alice"] and own["users"][0]["cost_usd"] == pytest.approx(0.75)
    by_admin = (await h.http.get("/api/ai/costs/by-user/bob", headers=h.admin)).json()
    assert by_admin["users"][0]["cost_usd"] == pytest.approx(2.0)


BAD_DAYS = ["0", "367", "-1", "1.5", "abc", "1;DROP TABLE agent_token_usage", "30 OR 1=1", ""]


async def test_days_outside_1_to_366_or_not_an_integer_is_422_naming_days(h, two_users):
    for path in REPORTS:
        for days in BAD_DAYS:
            r = await h.http.get(path, params={"days": days}, headers=h.admin)
            assert r.status_code == 422, (path, days, r.text)
            assert r.json()["error"]["field"] == "days"
        assert (await h.http.get(path, params={"days": "366"}, headers=h.admin)).status_code == 200


HOSTILE = ["alice' OR '1'='1", "alice\"; DROP TABLE agent_token_usage; --", "%", "_", "alice%", "*", "\\",
           "' UNION SELECT digest, 1, 1, 1 FROM api_keys --"]


async def test_sql_metacharacters_in_parameters_get_a_correct_empty_answer(h, two_users):
    alice, _ = two_users
    for value in HOSTILE:
        by_user = await h.http.get(f"/api/ai/costs/by-user/{quote(value, safe='')}", headers=h.admin)
        assert by_user.status_code == 200 and by_user.json()["users"] == [], value
        latency = await h.http.get("/api/ai/metrics/latency", params={"model": value}, headers=h.admin)
        assert latency.status_code == 200 and latency.json()["samples"] == 0
        as_user = await h.http.get(f"/api/ai/costs/by-user/{quote(value, safe='')}", headers=h.bearer(alice))
        assert as_user.status_code == 403
    total = (await h.http.get("/api/ai/costs/summary", headers=h.admin)).json()["total"]
    assert total["requests"] == 3  # nothing was dropped or rewritten


@pytest.mark.parametrize(("params", "field"), [({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"),
                                               ({"limit": "1 OR 1"}, "limit")])
async def test_conversation_limit_is_validated(h, params, field):
    r = await h.http.get("/api/ai/costs/conversations", params=params, headers=h.admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


async def test_reports_need_a_key(h):
    for path in REPORTS:
        assert (await h.http.get(path)).status_code == 401
