"""Idempotency-Key: one upstream call per (tenant, key, request), 409 on reuse with another
body or while the first is running, nothing kept for failures or streams, 24 h on the clock."""
import asyncio

import httpx
import pytest

from providers.clock import FakeClock
from providers.types import UpstreamConnectionError
from runtime.http.idempotency.store import (
    DAY_S, MemoryIdempotencyStore, RedisIdempotencyStore, StoredResponse, store_key,
)
from tests.unit.http.hardening.conftest import ADMIN, USER_A, USER_B, build_app, client_for
from tests.unit.core.test_router import FakePool

BODY = {"query": "hello", "use_case": "bulk"}


def keyed(key: str) -> dict[str, str]:
    return {"idempotency-key": key}


def test_same_key_and_body_calls_upstream_once_and_replays_the_answer(api):
    first = api.post("/api/ai/route", json=BODY, headers=keyed("k-1"))
    again = api.post("/api/ai/route", json=BODY, headers=keyed("k-1"))
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["x-switchboard-chain"] == first.headers["x-switchboard-chain"]
    assert len(api.pool.calls) == 1 and len(api.ledger.rows) == 1


def test_same_key_with_another_body_is_409(api):
    assert api.post("/api/ai/route", json=BODY, headers=keyed("k-2")).status_code == 200
    r = api.post("/api/ai/route", json={**BODY, "query": "something else"}, headers=keyed("k-2"))
    assert r.status_code == 409
    assert r.json()["error"]["type"] == "idempotency_key_reused" and r.json()["error"]["field"] == "Idempotency-Key"
    assert len(api.pool.calls) == 1


def test_same_key_on_another_path_is_409(api):
    api.post("/api/ai/route", json=BODY, headers=keyed("k-3"))
    r = api.post("/api/ai/ensemble", json=BODY, headers=keyed("k-3"))
    assert r.status_code == 409


def test_keys_are_scoped_per_api_key():
    app = build_app()
    alice, bob = client_for(app, USER_A), client_for(app, USER_B)
    a = alice.post("/api/ai/route", json=BODY, headers=keyed("shared"))
    b = bob.post("/api/ai/route", json={**BODY, "query": "bob's own"}, headers=keyed("shared"))
    assert a.status_code == b.status_code == 200 and "idempotent-replayed" not in b.headers
    assert len(app.state.pool.calls) == 2


def test_without_the_header_every_request_runs(api):
    api.post("/api/ai/route", json=BODY)
    api.post("/api/ai/route", json=BODY)
    assert len(api.pool.calls) == 2


def test_failures_are_not_kept_so_a_retry_runs_again():
    pool = FakePool({p: UpstreamConnectionError("down", platform=p) for p in ("gemini", "openrouter", "groq")})
    api = client_for(build_app(pool))
    assert api.post("/api/ai/route", json=BODY, headers=keyed("k-4")).status_code == 503
    pool.outcomes = {p: "ok" for p in pool.outcomes}
    r = api.post("/api/ai/route", json=BODY, headers=keyed("k-4"))
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers


def test_client_errors_are_kept(api):
    bad = {"query": "x" * 4000, "max_cost_usd": 0}
    first = api.post("/api/ai/route", json=bad, headers=keyed("k-5"))
    again = api.post("/api/ai/route", json=bad, headers=keyed("k-5"))
    assert first.status_code == again.status_code == 402 and again.headers["idempotent-replayed"] == "true"


def test_streams_are_not_stored(api):
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(2):
        r = api.post("/v1/chat/completions", json=body, headers=keyed("k-stream"))
        assert r.status_code == 200 and "[DONE]" in r.text and "idempotent-replayed" not in r.headers
    assert len(api.pool.calls) == 2


@pytest.mark.parametrize("key", ["x" * 256, "tab\tinside", ""])
def test_malformed_keys_are_400(api, key):
    r = api.post("/api/ai/route", json=BODY, headers={"idempotency-key": key})
    assert r.status_code == 400 and r.json()["error"]["field"] == "Idempotency-Key"
    assert api.pool.calls == []


class GatedPool(FakePool):
    """Holds every call until `gate` is set, so two requests overlap."""

    def __init__(self):
        super().__init__({p: "ok" for p in ("openai", "anthropic", "groq", "gemini", "openrouter")})
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()

    async def complete(self, platform, request, deadline, *args, **kwargs):
        self.entered.set()
        await self.gate.wait()
        return await super().complete(platform, request, deadline, *args, **kwargs)


def test_concurrent_duplicates_never_both_reach_the_upstream():
    async def scenario():
        pool = GatedPool()
        app = build_app(pool)
        transport = httpx.ASGITransport(app=app)
        headers = {"authorization": f"Bearer {ADMIN}", "idempotency-key": "k-race"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = asyncio.create_task(client.post("/api/ai/route", json=BODY, headers=headers))
            await asyncio.wait_for(pool.entered.wait(), 10)  # a bound, not a timing: fails instead of hanging
            second = await client.post("/api/ai/route", json=BODY, headers=headers)
            pool.gate.set()
            done = await asyncio.wait_for(first, 10)
            third = await client.post("/api/ai/route", json=BODY, headers=headers)
        return pool, second, done, third

    pool, second, first, third = asyncio.run(scenario())
    assert second.status_code == 409 and second.json()["error"]["type"] == "idempotency_in_progress"
    assert second.headers["retry-after"] == "1"
    assert first.status_code == 200 and third.content == first.content
    assert len(pool.calls) == 1


def run(coro):
    return asyncio.run(coro)


def test_memory_store_expires_answers_and_markers_on_the_clock():
    clock = FakeClock()
    store = MemoryIdempotencyStore(clock=clock)
    answer = StoredResponse(200, (("content-type", "application/json"),), b"{}")
    d = run(store.begin("k", "fp", 60.0))
    assert d.verdict == "proceed"
    assert run(store.begin("k", "fp", 60.0)).verdict == "in_flight"
    run(store.finish("k", d.owner, answer, DAY_S))
    clock.advance(DAY_S - 1)
    assert run(store.begin("k", "fp", 60.0)).response == answer
    assert run(store.begin("k", "other", 60.0)).verdict == "conflict"
    clock.advance(2)
    assert run(store.begin("k", "other", 60.0)).verdict == "proceed"  # a day later: a new request
    # an abandoned marker frees the key; a marker left by a crash frees it when it expires
    d = run(store.begin("m", "fp", 60.0))
    run(store.abandon("m", d.owner))
    d = run(store.begin("m", "fp", 60.0))
    assert d.verdict == "proceed"
    clock.advance(61)
    assert run(store.begin("m", "fp", 60.0)).verdict == "proceed"


def test_memory_store_is_bounded():
    store = MemoryIdempotencyStore(clock=FakeClock(), max_entries=3)
    for i in range(10):
        run(store.begin(f"k{i}", "fp", 60.0))
    assert len(store) <= 3


def test_only_the_owner_finishes_or_abandons():
    store = MemoryIdempotencyStore(clock=FakeClock())
    d = run(store.begin("k", "fp", 60.0))
    run(store.abandon("k", "someone-else"))
    run(store.finish("k", "someone-else", StoredResponse(200, (), b"x"), DAY_S))
    assert run(store.begin("k", "fp", 60.0)).verdict == "in_flight"


def test_store_keys_hide_the_api_key_and_separate_tenants():
    a, b = store_key("sk-sb-secret-a", "same"), store_key("sk-sb-secret-b", "same")
    assert a != b and "secret" not in a and "same" not in a


def test_redis_store_semantics(redis_url, redis_prefix):
    import redis.asyncio as redis

    async def scenario():
        store = RedisIdempotencyStore(redis.Redis.from_url(redis_url), prefix=redis_prefix)
        answer = StoredResponse(201, (("content-type", "application/json"), ("x-switchboard-chain", "bulk")), b'{"a":1}')
        d = await store.begin("k", "fp", 60.0)
        results = [d.verdict, (await store.begin("k", "fp", 60.0)).verdict]
        await store.finish("k", "not-the-owner", answer, 3600)
        results.append((await store.begin("k", "fp", 60.0)).verdict)
        await store.finish("k", d.owner, answer, 3600)
        replay = await store.begin("k", "fp", 60.0)
        results += [replay.verdict, (await store.begin("k", "other", 60.0)).verdict]
        d2 = await store.begin("gone", "fp", 60.0)
        await store.abandon("gone", d2.owner)
        results.append((await store.begin("gone", "fp", 60.0)).verdict)
        await store.close()
        return results, replay.response, answer

    results, replayed, answer = run(scenario())
    assert results == ["proceed", "in_flight", "in_flight", "replay", "conflict", "proceed"]
    assert replayed == answer
