"""What differs per backend: TTL (fake clock for memory, real key TTLs for Redis), Redis key
layout, sharing between store instances, and the store factory."""
from __future__ import annotations

import pytest

from blackboard.models import IdFactory, Limits
from blackboard.store import MemoryStore, RedisStore, make_store, session_keys
from providers.clock import FakeClock

ENTRY = {"agent_id": "a", "insight": "x", "confidence": 0.5}


# -- memory: TTL on the injected clock ------------------------------------------------------


async def test_memory_session_expires_after_its_ttl(clock):
    store = MemoryStore(clock=clock, limits=Limits(ttl_s=60))
    await store.write("s1", ENTRY)
    clock.advance(59.9)
    assert len(await store.read_all("s1")) == 1
    clock.advance(0.2)
    assert await store.read_all("s1") == []
    assert await store.sessions() == []


async def test_memory_ttl_is_refreshed_by_writes_not_reads(clock):
    store = MemoryStore(clock=clock, limits=Limits(ttl_s=60))
    await store.write("s1", ENTRY)
    clock.advance(50)
    await store.write("s1", ENTRY)
    clock.advance(50)  # 100 s after the first write, 50 s after the second
    assert len(await store.read_all("s1")) == 2
    clock.advance(9)
    await store.read_all("s1")
    clock.advance(2)
    assert await store.read_all("s1") == []


async def test_memory_expiry_only_drops_stale_sessions(clock):
    store = MemoryStore(clock=clock, limits=Limits(ttl_s=60))
    await store.write("old", ENTRY)
    clock.advance(30)
    await store.write("new", ENTRY)
    clock.advance(40)
    assert await store.sessions() == ["new"]
    await store.write("old", ENTRY)  # an expired session starts afresh
    assert len(await store.read_all("old")) == 1


async def test_memory_expired_session_frees_its_entry_budget(clock):
    store = MemoryStore(clock=clock, limits=Limits(ttl_s=10, max_entries=1))
    await store.write("s1", ENTRY)
    clock.advance(11)
    await store.write("s1", ENTRY)
    assert len(await store.read_all("s1")) == 1


# -- redis: key layout, TTLs, sharing --------------------------------------------------------


@pytest.fixture
async def redis_store(bb_redis_url, bb_namespace, clock):
    store = RedisStore.from_url(
        bb_redis_url, namespace=bb_namespace, clock=clock, limits=Limits(ttl_s=120)
    )
    yield store
    await store.close()


async def _raw(url: str):
    import redis.asyncio as aioredis

    return aioredis.Redis.from_url(url)


async def test_redis_puts_a_ttl_on_every_key_of_a_session(redis_store, bb_redis_url, bb_namespace):
    await redis_store.write("s1", ENTRY)
    raw = await _raw(bb_redis_url)
    try:
        for key in session_keys(bb_namespace, "s1"):
            assert key.startswith(f"switchboard:bb:{bb_namespace}:")
            assert 0 < await raw.pttl(key) <= 120_000
        # a write refreshes the TTL of all keys
        for key in session_keys(bb_namespace, "s1"):
            await raw.pexpire(key, 5_000)
        await redis_store.write("s1", ENTRY)
        for key in session_keys(bb_namespace, "s1"):
            assert await raw.pttl(key) > 5_000
    finally:
        await raw.aclose()


async def test_redis_clear_deletes_every_key(redis_store, bb_redis_url, bb_namespace):
    await redis_store.write("s1", ENTRY)
    await redis_store.clear("s1")
    raw = await _raw(bb_redis_url)
    try:
        assert await raw.exists(*session_keys(bb_namespace, "s1")) == 0
    finally:
        await raw.aclose()


async def test_redis_sessions_are_shared_between_store_instances(
    redis_store, bb_redis_url, bb_namespace
):
    entry = await redis_store.write("shared", ENTRY)
    other = RedisStore.from_url(bb_redis_url, namespace=bb_namespace, clock=FakeClock())
    try:
        assert await other.read_all("shared") == [entry]
        assert await other.sessions() == ["shared"]
    finally:
        await other.close()


async def test_redis_namespaces_are_isolated(redis_store, bb_redis_url, bb_namespace):
    await redis_store.write("s1", ENTRY)
    other_ns = bb_namespace + "-other"
    other = RedisStore.from_url(bb_redis_url, namespace=other_ns)
    try:
        assert await other.read_all("s1") == []
        assert await other.sessions() == []
    finally:
        await other.close()


async def test_redis_write_retries_on_an_id_collision(redis_store, monkeypatch):
    first = await redis_store.write("s1", ENTRY)
    ids = iter([first.id, "fresh-id"])
    monkeypatch.setattr(IdFactory, "next_id", lambda self: next(ids))
    second = await redis_store.write("s1", ENTRY)
    assert second.id == "fresh-id"
    assert [e.id for e in await redis_store.read_all("s1")] == [first.id, "fresh-id"]


def test_redis_namespace_is_validated():
    with pytest.raises(ValueError, match="namespace"):
        RedisStore(client=None, namespace="bad ns")  # rejected before the client is used


# -- factory ---------------------------------------------------------------------------------


async def test_make_store_picks_the_backend(bb_redis_url, bb_namespace):
    assert isinstance(make_store(None), MemoryStore)
    store = make_store(bb_redis_url, namespace=bb_namespace)
    try:
        assert isinstance(store, RedisStore) and store.namespace == bb_namespace
    finally:
        await store.close()
