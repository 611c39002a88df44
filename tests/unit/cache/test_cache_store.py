"""One suite, every `CacheStore`: the memory store and the Redis store must behave alike."""
from __future__ import annotations

import numpy as np

from runtime.cache.entries import CacheStats
from runtime.cache.stores import MemoryStore, VectorRecord

from tests.unit.cache.cache_helpers import make_answer


def vector_record(key: str, *, expires_at: float, partition: str = "p") -> VectorRecord:
    vec = np.arange(4, dtype=np.float32) + len(key)
    return VectorRecord(partition=partition, key=key, vector=vec.tobytes(), expires_at=expires_at)


async def test_get_returns_what_was_set(backend):
    store = backend.store
    assert await store.get("k1") is None
    answer = make_answer("Paris. ✓ ünïcode", cost_usd=0.0123456789)
    await store.set("k1", answer, 60)
    assert await store.get("k1") == answer


async def test_set_overwrites_and_delete_removes(backend):
    store = backend.store
    await store.set("k", make_answer("one"), 60)
    await store.set("k", make_answer("two"), 60)
    assert (await store.get("k")).text == "two"
    assert await store.delete("k") is True
    assert await store.get("k") is None
    assert await store.delete("k") is False


async def test_entries_expire_after_their_ttl(backend):
    await backend.store.set("k", make_answer(), 30)
    await backend.check_expiry("k", 30)


async def test_zero_ttl_stores_nothing(backend):
    await backend.store.set("k", make_answer(), 0)
    assert await backend.store.get("k") is None


async def test_stats_add_up_recorded_deltas_and_count_entries(backend):
    store = backend.store
    await store.set("a", make_answer(), 60)
    await store.set("b", make_answer(), 60)
    await store.record(CacheStats(hits=2, misses=1, semantic_hits=1, saved_usd=0.25))
    await store.record(CacheStats(hits=1, misses=3, saved_usd=0.125))
    stats = await store.stats()
    assert (stats.hits, stats.misses, stats.semantic_hits) == (3, 4, 1)
    assert abs(stats.saved_usd - 0.375) < 1e-12
    assert stats.entries == 2
    assert abs(stats.hit_rate - 3 / 7) < 1e-12


async def test_vector_log_is_read_in_order_with_a_cursor(backend):
    store = backend.store
    now = backend.clock.time()
    assert await store.vectors_since(None) == ([], None)
    await store.add_vector(vector_record("k1", expires_at=now + 60))
    await store.add_vector(vector_record("k2", expires_at=now + 60))
    first, cursor = await store.vectors_since(None)
    assert [r.key for r in first] == ["k1", "k2"]
    assert first[0] == vector_record("k1", expires_at=now + 60)  # bytes survive the round trip
    assert await store.vectors_since(cursor) == ([], cursor)
    await store.add_vector(vector_record("k3", expires_at=now + 60))
    later, cursor2 = await store.vectors_since(cursor)
    assert [r.key for r in later] == ["k3"] and cursor2 != cursor


async def test_vector_log_pages_and_skips_expired_records(backend):
    store = backend.store
    now = backend.clock.time()
    for i in range(5):
        await store.add_vector(vector_record(f"k{i}", expires_at=now + (1 if i == 2 else 60)))
    page, cursor = await store.vectors_since(None, limit=2)
    assert [r.key for r in page] == ["k0", "k1"]
    backend.clock.advance(5)
    rest, _ = await store.vectors_since(cursor, limit=10)
    assert [r.key for r in rest] == ["k3", "k4"]


async def test_clear_forgets_everything(backend):
    store = backend.store
    await store.set("k", make_answer(), 60)
    await store.add_vector(vector_record("k", expires_at=backend.clock.time() + 60))
    await store.record(CacheStats(hits=1))
    await store.clear()
    assert await store.get("k") is None
    assert await store.vectors_since(None) == ([], None)
    assert (await store.stats()).hits == 0


async def test_memory_store_is_bounded_lru(clock):
    store = MemoryStore(max_entries=2, clock=clock)
    await store.set("a", make_answer("a"), 60)
    await store.set("b", make_answer("b"), 60)
    assert await store.get("a") is not None  # a is now the most recent
    await store.set("c", make_answer("c"), 60)
    assert await store.get("b") is None
    assert {(await store.get(k)).text for k in ("a", "c")} == {"a", "c"}
    assert (await store.stats()).entries == 2
