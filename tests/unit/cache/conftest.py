"""Cache fixtures: a fake clock, answers, and `backend`, one harness per shared-store
implementation (memory; Redis under a per-test namespace, deleted afterwards)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pytest

from providers.clock import FakeClock
from runtime.cache.stores import MemoryStore, RedisStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Backend:
    name: str
    store: Any
    clock: FakeClock
    caches: list = field(default_factory=list)

    def track(self, cache: Any) -> Any:
        """Register a ResponseCache to close (flushing its counters) before the store is wiped."""
        self.caches.append(cache)
        return cache

    async def check_expiry(self, key: str, ttl_s: float) -> None:
        """The entry lives `ttl_s`: on the fake clock for memory; Redis's own PTTL for Redis."""
        left = await self.store.ttl(key)
        assert left is not None and ttl_s - 1.0 < left <= ttl_s
        if self.name == "memory":
            self.clock.advance(ttl_s - 0.5)
            assert await self.store.get(key) is not None
            self.clock.advance(1.0)
            assert await self.store.get(key) is None


@pytest.fixture(params=["memory", "redis"])
async def backend(request, clock):
    if request.param == "memory":
        harness = Backend("memory", MemoryStore(max_entries=3, max_vectors=50, clock=clock), clock)
        yield harness
        for cache in harness.caches:
            await cache.close()
        return
    url = request.getfixturevalue("redis_url")  # skips (or fails) when Redis is unreachable
    store = RedisStore.from_url(url, namespace=f"test-{uuid.uuid4().hex[:12]}", max_vectors=50, clock=clock)
    harness = Backend("redis", store, clock)
    try:
        yield harness
    finally:
        for cache in harness.caches:
            await cache.close()
        await store.clear()
        leftovers = [k async for k in store._redis.scan_iter(match=store.prefix + "*")]
        await store.close()
        assert leftovers == [], "the Redis store left keys behind"


@pytest.fixture(scope="session")
def embedder():
    """The real ONNX model (loaded once; ~0.5 s)."""
    from runtime.cache.embed import Embedder

    return Embedder()
