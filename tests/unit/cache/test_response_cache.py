"""ResponseCache end to end over each shared store: hits, misses, TTL, stats, dollars saved."""
from __future__ import annotations

from dataclasses import replace

import pytest

from providers.types import ChatResponse, Usage
from runtime.cache.entries import CachedAnswer
from runtime.cache.keys import CachePolicy
from runtime.cache.response_cache import ResponseCache
from runtime.cache.stores import MemoryStore
from tests.unit.cache.cache_helpers import make_request

ROUTE = "chain:chat_cost"


def answer_for(cache: ResponseCache, text: str, cost: float) -> CachedAnswer:
    response = ChatResponse(
        text=text, usage=Usage(12, 3), finish_reason="stop", platform="gemini",
        model="gemini-2.5-flash-lite",
    )
    return CachedAnswer.from_response(response, cost_usd=cost, created_at=cache._clock.time())


async def serve(cache: ResponseCache, request, *, tenant="acme", route=ROUTE, mode=None, cost=0.01):
    """What the router does: look up, and on a miss 'call upstream' and store the answer."""
    lookup = await cache.lookup(request, route=route, tenant=tenant, mode=mode)
    if not lookup.hit:
        await cache.store(lookup, answer_for(cache, f"answer to {request.messages[-1].content}", cost))
    return lookup


@pytest.fixture
def cache(backend):
    return backend.track(ResponseCache(backend.store, policy=CachePolicy(ttl_s=3600), clock=backend.clock))


async def test_same_request_twice_is_a_hit_with_the_original_answer(cache):
    first = await serve(cache, make_request(), cost=0.02)
    second = await serve(cache, make_request())
    assert not first.hit and second.hit
    assert second.answer.text == "answer to What is the capital of France?"
    assert second.answer.cost_usd == 0.02 and second.answer.platform == "gemini"


@pytest.mark.parametrize(
    "variant",
    [
        {"request": make_request(system="Answer in French.")},
        {"request": make_request(temperature=0.1)},
        {"request": make_request(max_tokens=100)},
        {"request": make_request("what is the capital of france?")},
        {"request": make_request("What is the capital of France?  ")},
        {"tenant": "globex"},
        {"route": "chain:chat_speed"},
    ],
)
async def test_any_difference_misses(cache, variant):
    await serve(cache, make_request())
    variant = dict(variant)  # parametrized dicts are shared between backends
    request = variant.pop("request", make_request())
    assert not (await serve(cache, request, **variant)).hit


async def test_shared_policy_serves_every_tenant(backend):
    cache = backend.track(ResponseCache(backend.store, policy=CachePolicy(shared=True), clock=backend.clock))
    await serve(cache, make_request(), tenant="acme")
    assert (await serve(cache, make_request(), tenant="globex")).hit


async def test_uncacheable_requests_bypass_and_are_not_counted(cache):
    hot = make_request(temperature=0.9)
    assert (await serve(cache, hot)).key is None
    assert not (await serve(cache, hot)).hit
    assert (await serve(cache, make_request(), mode="off")).key is None
    stats = await cache.stats()
    assert stats.lookups == 0 and stats.entries == 0


async def test_opt_in_caches_a_hot_request(cache):
    hot = make_request(temperature=0.9)
    await serve(cache, hot, mode="exact")
    assert (await serve(cache, hot, mode="exact")).hit


async def test_an_answer_that_ended_in_error_is_not_kept(cache):
    lookup = await cache.lookup(make_request(), route=ROUTE, tenant="acme")
    failed = replace(answer_for(cache, "", 0.01), finish_reason="error")
    await cache.store(lookup, failed)
    assert not (await cache.lookup(make_request(), route=ROUTE, tenant="acme")).hit


async def test_second_replica_hits_through_the_shared_store(backend, cache):
    await serve(cache, make_request())
    other = backend.track(ResponseCache(backend.store, clock=backend.clock))
    lookup = await serve(other, make_request())
    assert lookup.hit and lookup.source == "store"
    assert (await serve(other, make_request())).source == "front"


async def test_entry_expires_after_ttl(backend):
    cache = backend.track(ResponseCache(backend.store, policy=CachePolicy(ttl_s=120), clock=backend.clock))
    lookup = await serve(cache, make_request())
    await backend.check_expiry(lookup.key, 120)


async def test_front_never_outlives_the_entry(clock):
    store = MemoryStore(clock=clock)
    policy = CachePolicy(ttl_s=100)
    writer = ResponseCache(store, policy=policy, clock=clock)
    await serve(writer, make_request())
    clock.advance(90)
    reader = ResponseCache(store, policy=policy, front_ttl_s=300, clock=clock)
    assert (await serve(reader, make_request())).source == "store"  # front filled, 10 s left
    clock.advance(11)
    assert not (await reader.lookup(make_request(), route=ROUTE, tenant="acme")).hit


async def test_stats_count_hits_misses_and_dollars_saved_from_real_costs(cache):
    await serve(cache, make_request("a"), cost=0.015)  # miss
    await serve(cache, make_request("b"), cost=0.0004)  # miss
    for _ in range(3):
        await serve(cache, make_request("a"))  # 3 hits worth 0.015 each
    await serve(cache, make_request("b"))  # 1 hit worth 0.0004
    stats = await cache.stats()
    assert (stats.hits, stats.misses, stats.semantic_hits, stats.entries) == (4, 2, 0, 2)
    assert stats.saved_usd == pytest.approx(3 * 0.015 + 0.0004)
    body = stats.as_dict()
    assert body["hit_rate"] == pytest.approx(4 / 6, abs=1e-6) and body["lookups"] == 6


class BrokenStore(MemoryStore):
    async def get(self, key):
        raise ConnectionError("store down")

    async def set(self, key, answer, ttl_s):
        raise ConnectionError("store down")

    async def record(self, delta):
        raise ConnectionError("store down")


async def test_a_failing_store_is_a_miss_and_keeps_counts(clock):
    store = BrokenStore(clock=clock)
    cache = ResponseCache(store, clock=clock)
    assert not (await serve(cache, make_request())).hit
    assert (await serve(cache, make_request())).source == "front"  # the replica still helps
    await cache.flush_stats()
    assert (cache._pending.hits, cache._pending.misses) == (1, 1)
