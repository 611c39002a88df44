"""Cache fixtures: a fake clock, answers, and `backend`, one harness per shared-store
implementation (memory; Redis under a per-test namespace, deleted afterwards)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from providers.clock import FakeClock
from runtime.cache_backends import MemoryStore, RedisStore


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class Backend:
    name: str
    store: Any
    clock: FakeClock

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
        yield Backend("memory", MemoryStore(max_entries=3, max_vectors=50, clock=clock), clock)
        return
    url = request.getfixturevalue("redis_url")  # skips (or fails) when Redis is unreachable
    store = RedisStore.from_url(url, namespace=f"test-{uuid.uuid4().hex[:12]}", max_vectors=50, clock=clock)
    try:
        yield Backend("redis", store, clock)
    finally:
        await store.clear()
        await store.close()


@pytest.fixture(scope="session")
def embedder():
    """The real ONNX model (loaded once; ~0.5 s)."""
    from runtime.embed import Embedder

    return Embedder()
