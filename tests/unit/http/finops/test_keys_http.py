"""API keys over HTTP: admin-only management, the key shown once and stored as a digest,
disabling that takes effect within the cache TTL, and a replica cache that spares the ledger."""
from __future__ import annotations

from pathlib import Path

import pytest

from runtime.http.auth import Authenticator, key_digest
from runtime.finops.errors import LedgerUnavailableError
from runtime.http.errors import ApiError
from tests.unit.http.finops.conftest import ADMIN


async def test_admin_creates_a_key_shown_once_and_stored_only_as_a_digest(h):
    made = await h.new_key("alice", agent="reviewer", daily_budget_usd=0.5, rpm=60)
    key = made["key"]
    assert key.startswith("sk-sb-") and made["user_id"] == "alice" and made["daily_budget_usd"] == 0.5
    listed = (await h.http.get("/api/keys", headers=h.admin)).json()["keys"]
    assert [k["key_id"] for k in listed] == [made["key_id"]]
    assert "key" not in listed[0] and key not in str(listed)
    me = await h.http.get("/api/ai/costs/summary", headers=h.bearer(key))
    assert me.status_code == 200 and me.json()["user_id"] == "alice"
    await h.ledger.drain()
    stored = b"".join(p.read_bytes() for p in Path(h.db_path).parent.glob("ledger.sqlite3*"))
    assert key.encode() not in stored
    assert key_digest(key).encode() in stored


async def test_only_the_admin_manages_keys(h):
    key = (await h.new_key("bob"))["key"]
    for method, path in [("GET", "/api/keys"), ("POST", "/api/keys"), ("DELETE", "/api/keys/key_0123456789ab")]:
        r = await h.http.request(method, path, json={"user_id": "eve"}, headers=h.bearer(key))
        assert r.status_code == 403 and r.json()["error"]["type"] == "forbidden"
    assert (await h.http.get("/api/keys")).status_code == 401
    assert (await h.http.get("/api/keys", headers=h.bearer("sk-sb-not-a-real-key"))).status_code == 401


async def test_disabling_takes_effect_here_at_once_and_on_other_replicas_within_the_ttl(h, clock):
    made = await h.new_key("carol")
    key, key_id = made["key"], made["key_id"]
    other_replica = Authenticator(key_digest(ADMIN), h.ledger, clock, ttl_s=5.0)
    assert (await other_replica.principal_for(key)).user_id == "carol"  # now cached there

    r = await h.http.post(f"/api/keys/{key_id}/disable", headers=h.admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    refused = await h.http.get("/api/ai/costs/summary", headers=h.bearer(key))
    assert refused.status_code == 401 and "disabled" in refused.json()["error"]["message"]

    clock.advance(4.9)
    assert (await other_replica.principal_for(key)).user_id == "carol"  # still within its TTL
    clock.advance(0.2)
    with pytest.raises(ApiError) as info:
        await other_replica.principal_for(key)
    assert info.value.status == 401

    assert (await h.http.post(f"/api/keys/{key_id}/enable", headers=h.admin)).json()["disabled"] is False
    assert (await h.http.get("/api/ai/costs/summary", headers=h.bearer(key))).status_code == 200
    deleted = await h.http.delete(f"/api/keys/{key_id}", headers=h.admin)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert (await h.http.get("/api/ai/costs/summary", headers=h.bearer(key))).status_code == 401
    assert (await h.http.delete(f"/api/keys/{key_id}", headers=h.admin)).status_code == 404


@pytest.mark.parametrize("key_id", ["key_1' OR '1'='1", "key_0123456789ab;DROP TABLE api_keys", "%27--", "x"])
async def test_malformed_key_ids_are_422_naming_key_id(h, key_id):
    from urllib.parse import quote

    r = await h.http.post(f"/api/keys/{quote(key_id, safe='')}/disable", headers=h.admin)
    assert r.status_code in (404, 422)  # a path segment FastAPI cannot even route is a 404
    if r.status_code == 422:
        assert r.json()["error"]["field"] == "key_id"
    assert (await h.http.get("/api/keys", headers=h.admin)).status_code == 200  # table intact


@pytest.mark.parametrize(("body", "field"), [
    ({"user_id": "a", "daily_budget_usd": -1}, "daily_budget_usd"),
    ({"user_id": "a", "monthly_budget_usd": "lots"}, "monthly_budget_usd"),
    ({"user_id": "a", "rpm": 0}, "rpm"),
    ({"user_id": "admin"}, "user_id"),
    ({"user_id": "a'; DROP TABLE api_keys; --"}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "a", "digest": "x"}, "digest"),
    ({}, "user_id"),
])
async def test_key_creation_validates_each_field(h, body, field):
    r = await h.http.post("/api/keys", json=body, headers=h.admin)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


async def test_listing_by_user_with_metacharacters_is_a_correct_empty_answer(h):
    await h.new_key("dave")
    r = await h.http.get("/api/keys", params={"user_id": "dave' OR '1'='1"}, headers=h.admin)
    assert r.status_code == 200 and r.json() == {"keys": []}


class CountingLedger:
    def __init__(self, inner, fail: bool = False):
        self.inner, self.fail, self.lookups = inner, fail, 0

    async def lookup_by_key(self, key):
        self.lookups += 1
        if self.fail:
            raise LedgerUnavailableError("down")
        return await self.inner.lookup_by_key(key)


async def test_the_replica_cache_asks_the_ledger_once_per_key_per_ttl(h, clock):
    key = (await h.new_key("erin"))["key"]
    counting = CountingLedger(h.ledger)
    auth = Authenticator(key_digest(ADMIN), counting, clock, ttl_s=5.0)
    for _ in range(10):
        assert (await auth.principal_for(key)).key_id is not None
    unknown = "sk-sb-" + "x" * 43
    for _ in range(3):
        with pytest.raises(ApiError):
            await auth.principal_for(unknown)
    assert counting.lookups == 2  # one for the key, one (negative) for the unknown one
    with pytest.raises(ApiError):
        await auth.principal_for("not-even-our-prefix")
    assert counting.lookups == 2  # never looked up
    clock.advance(5.0)
    await auth.principal_for(key)
    assert counting.lookups == 3


async def test_a_ledger_that_cannot_be_reached_is_503_not_a_guess(h, clock):
    key = (await h.new_key("frank"))["key"]
    auth = Authenticator(key_digest(ADMIN), CountingLedger(h.ledger, fail=True), clock)
    with pytest.raises(ApiError) as info:
        await auth.principal_for(key)
    assert info.value.status == 503
    assert (await auth.principal_for(ADMIN)).is_admin  # the admin key needs no lookup


async def test_principal_carries_the_keys_budgets_agent_and_rpm(h):
    made = await h.new_key("gina", agent="translator", daily_budget_usd=1.0, monthly_budget_usd=20.0, rpm=5)
    who = await h.auth.principal_for(made["key"])
    assert (who.user_id, who.agent, who.rpm, who.is_admin) == ("gina", "translator", 5, False)
    assert [b.name for b in who.budgets] == [f"key:{made['key_id']}:daily", f"key:{made['key_id']}:monthly"]
