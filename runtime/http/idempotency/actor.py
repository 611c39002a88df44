"""The shared idempotency store when Redis is not configured: one named Ray actor holding a
`MemoryIdempotencyStore`, so every Serve replica sees the same keys and in-flight markers.

One actor hop per keyed POST (requests without an Idempotency-Key never call it). A restart
starts empty: a repeat after a restart runs again (use Redis to keep keys across restarts).
"""
from __future__ import annotations

from typing import Any

from runtime.http.idempotency.store import (
    Decision, IdempotencyStore, MemoryIdempotencyStore, RedisIdempotencyStore, StoredResponse,
)
from providers.named_actor import HIGH_RATE, named_actor_options

ACTOR_NAME = "idempotency"


class IdempotencyActor:
    """`ray.remote(IdempotencyActor).options(**idempotency_actor_options(ns))`. Async methods on
    one event loop: `begin` is atomic (no await inside the store)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._store = MemoryIdempotencyStore(max_entries=max_entries)

    async def ready(self) -> bool:
        return True

    async def begin(self, key: str, fp: str, in_flight_ttl_s: float) -> Decision:
        return await self._store.begin(key, fp, in_flight_ttl_s)

    async def finish(self, key: str, owner: str, response: StoredResponse, ttl_s: float) -> None:
        await self._store.finish(key, owner, response, ttl_s)

    async def abandon(self, key: str, owner: str) -> None:
        await self._store.abandon(key, owner)

    async def size(self) -> int:
        return len(self._store)


def idempotency_actor_options(namespace: str, name: str = ACTOR_NAME) -> dict[str, Any]:
    return named_actor_options(name, namespace, get_if_exists=True, **HIGH_RATE)  # begin is not idempotent


class ActorIdempotencyStore:
    """`IdempotencyStore` over an `IdempotencyActor` handle."""

    def __init__(self, handle: Any) -> None:
        self._actor = handle

    async def begin(self, key: str, fp: str, in_flight_ttl_s: float) -> Decision:
        return await self._actor.begin.remote(key, fp, in_flight_ttl_s)

    async def finish(self, key: str, owner: str, response: StoredResponse, ttl_s: float) -> None:
        await self._actor.finish.remote(key, owner, response, ttl_s)

    async def abandon(self, key: str, owner: str) -> None:
        await self._actor.abandon.remote(key, owner)


async def open_actor_store(namespace: str, name: str = ACTOR_NAME) -> ActorIdempotencyStore:
    """Create (or find) the named actor and wait until it answers."""
    import ray

    handle = ray.remote(IdempotencyActor).options(**idempotency_actor_options(namespace, name)).remote()
    await handle.ready.remote()
    return ActorIdempotencyStore(handle)


async def open_idempotency_store(*, redis_url: str | None, ray_namespace: str) -> IdempotencyStore:
    """Redis when REDIS_URL is set, else the named IdempotencyActor (created if missing)."""
    if redis_url:
        return RedisIdempotencyStore.from_url(redis_url)
    return await open_actor_store(ray_namespace)
