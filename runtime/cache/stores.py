"""Shared stores behind the replicas' LRU fronts: one async interface, `CacheStore`, and its
implementations.

- `MemoryStore`: a bounded LRU on the injected clock. In production it lives inside the
  `CacheActor` (one named Ray actor, reached through `ActorStore`), so every replica shares it.
- `RedisStore`: chosen when REDIS_URL is set. Keys live under `switchboard:<namespace>:`;
  entries are JSON with a Redis-side TTL (PX), stats are a hash, and the semantic vectors are
  a capped stream that every replica replays to build and refresh its index.

Both keep the semantic vectors beside the entries as `VectorRecord`s in an append-only log read
with a cursor (`vectors_since`), so a restarted or newly started replica rebuilds its index
from the store and running replicas pick up each other's additions.
"""
from __future__ import annotations

import base64
import itertools
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.cache.entries import CachedAnswer, CacheStats, LRUCache
from providers.named_actor import HIGH_RATE, named_actor_options

DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_MAX_VECTORS = 100_000
REDIS_ROOT = "switchboard"
CACHE_ACTOR_NAME = "switchboard:cache"


@dataclass(frozen=True, slots=True)
class VectorRecord:
    """One semantic-index row: the exact key it points to, its partition, a float32 unit vector
    (raw bytes, so the stores need no numpy) and when it stops being valid (wall clock)."""

    partition: str
    key: str
    vector: bytes
    expires_at: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "partition": self.partition,
                "key": self.key,
                "vector": base64.b64encode(self.vector).decode("ascii"),
                "expires_at": self.expires_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "VectorRecord":
        data = json.loads(text)
        data["vector"] = base64.b64decode(data["vector"])
        return cls(**data)


class CacheStore(Protocol):
    """The shared cache store. Every method is a coroutine; all values are plain data."""

    async def get(self, key: str) -> CachedAnswer | None: ...

    async def set(self, key: str, answer: CachedAnswer, ttl_s: float) -> None: ...

    async def delete(self, key: str) -> bool: ...

    async def ttl(self, key: str) -> float | None:
        """Seconds the entry has left, None when absent."""
        ...

    async def add_vector(self, record: VectorRecord) -> None: ...

    async def vectors_since(
        self, cursor: str | None, limit: int = 1000
    ) -> tuple[list[VectorRecord], str | None]:
        """Live records appended after `cursor` (None: from the start), oldest first, and the
        cursor to pass next time (unchanged when nothing is new)."""
        ...

    async def record(self, delta: CacheStats) -> None:
        """Add a replica's hit/miss/savings counts to the shared counters."""
        ...

    async def stats(self) -> CacheStats: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process store: entries in a bounded LRU, vectors in a bounded log."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_vectors: int = DEFAULT_MAX_VECTORS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clock = clock
        self._entries: LRUCache[CachedAnswer] = LRUCache(max_entries, clock)
        self._vectors: deque[tuple[int, VectorRecord]] = deque(maxlen=max_vectors)
        self._seq = itertools.count(1)
        self._stats = CacheStats()

    async def get(self, key: str) -> CachedAnswer | None:
        return self._entries.get(key)

    async def set(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        self._entries.set(key, answer, ttl_s)

    async def delete(self, key: str) -> bool:
        return self._entries.delete(key)

    async def ttl(self, key: str) -> float | None:
        return self._entries.ttl(key)

    async def add_vector(self, record: VectorRecord) -> None:
        self._vectors.append((next(self._seq), record))

    async def vectors_since(
        self, cursor: str | None, limit: int = 1000
    ) -> tuple[list[VectorRecord], str | None]:
        after = int(cursor) if cursor else 0
        now = self._clock.time()
        out: list[VectorRecord] = []
        last = after
        for seq, record in self._vectors:
            if seq <= after:
                continue
            if len(out) >= limit:
                break
            last = seq
            if record.expires_at > now:
                out.append(record)
        return out, (str(last) if last else cursor)

    async def record(self, delta: CacheStats) -> None:
        self._stats.add(delta)

    async def stats(self) -> CacheStats:
        self._entries.purge_expired()
        snapshot = CacheStats()
        snapshot.add(self._stats)
        snapshot.entries = len(self._entries)
        return snapshot

    async def clear(self) -> None:
        self._entries.clear()
        self._vectors.clear()
        self._stats = CacheStats()

    async def close(self) -> None:
        return None


class RedisStore:
    """Redis store under `switchboard:<namespace>:`. TTLs are Redis's own (SET ... PX); a sorted
    set of keys by expiry gives the live entry count without scanning."""

    def __init__(
        self,
        client: Any,
        *,
        namespace: str = "cache",
        max_vectors: int = DEFAULT_MAX_VECTORS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._redis = client
        self.prefix = f"{REDIS_ROOT}:{namespace}:"
        self._max_vectors = max_vectors
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> "RedisStore":
        import redis.asyncio as redis

        return cls(redis.Redis.from_url(url, socket_connect_timeout=2), **kwargs)

    def _entry(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}index"

    @property
    def _stream(self) -> str:
        return f"{self.prefix}vectors"

    @property
    def _stats_key(self) -> str:
        return f"{self.prefix}stats"

    async def get(self, key: str) -> CachedAnswer | None:
        raw = await self._redis.get(self._entry(key))
        return None if raw is None else CachedAnswer.from_json(raw)

    async def set(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        ttl_ms = int(ttl_s * 1000)
        if ttl_ms <= 0:
            await self.delete(key)
            return
        async with self._redis.pipeline(transaction=True) as pipe:
            now = self._clock.time()
            pipe.set(self._entry(key), answer.to_json(), px=ttl_ms)
            pipe.zremrangebyscore(self._index, "-inf", now)  # keeps the index bounded
            pipe.zadd(self._index, {key: now + ttl_s})
            await pipe.execute()

    async def delete(self, key: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._entry(key))
            pipe.zrem(self._index, key)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def ttl(self, key: str) -> float | None:
        ms = await self._redis.pttl(self._entry(key))
        return ms / 1000 if ms > 0 else None

    async def add_vector(self, record: VectorRecord) -> None:
        await self._redis.xadd(
            self._stream, {"v": record.to_json()}, maxlen=self._max_vectors, approximate=True
        )

    async def vectors_since(
        self, cursor: str | None, limit: int = 1000
    ) -> tuple[list[VectorRecord], str | None]:
        start = f"({cursor}" if cursor else "-"
        rows = await self._redis.xrange(self._stream, min=start, max="+", count=limit)
        if not rows:
            return [], cursor
        now = self._clock.time()
        records = [VectorRecord.from_json(fields[b"v"]) for _, fields in rows]
        last_id = rows[-1][0]
        last = last_id.decode() if isinstance(last_id, bytes) else last_id
        return [r for r in records if r.expires_at > now], last

    async def record(self, delta: CacheStats) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hincrby(self._stats_key, "hits", delta.hits)
            pipe.hincrby(self._stats_key, "misses", delta.misses)
            pipe.hincrby(self._stats_key, "semantic_hits", delta.semantic_hits)
            pipe.hincrbyfloat(self._stats_key, "saved_usd", delta.saved_usd)
            await pipe.execute()

    async def stats(self) -> CacheStats:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self._index, "-inf", self._clock.time())
            pipe.zcard(self._index)
            pipe.hgetall(self._stats_key)
            _, entries, raw = await pipe.execute()
        counts = {k.decode(): v.decode() for k, v in raw.items()}
        return CacheStats(
            hits=int(counts.get("hits", 0)),
            misses=int(counts.get("misses", 0)),
            semantic_hits=int(counts.get("semantic_hits", 0)),
            saved_usd=float(counts.get("saved_usd", 0.0)),
            entries=int(entries),
        )

    async def clear(self) -> None:
        """Delete every key under this store's namespace."""
        batch: list[bytes] = []
        async for key in self._redis.scan_iter(match=self.prefix + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await self._redis.delete(*batch)
                batch.clear()
        if batch:
            await self._redis.delete(*batch)

    async def close(self) -> None:
        await self._redis.aclose()


# ------------------------------------------------------------------------------------------
# Ray: the default shared store is one named actor wrapping a MemoryStore.
# ------------------------------------------------------------------------------------------


class CacheActor(MemoryStore):
    """The `Cache` Ray actor: `ray.remote(CacheActor).options(**cache_actor_options(ns))`.
    A restart starts empty (the cache is an optimisation); use Redis for durability."""

    def __init__(
        self, max_entries: int = DEFAULT_MAX_ENTRIES, max_vectors: int = DEFAULT_MAX_VECTORS
    ) -> None:
        super().__init__(max_entries=max_entries, max_vectors=max_vectors)

    async def ready(self) -> bool:
        return True


def cache_actor_options(namespace: str, name: str = CACHE_ACTOR_NAME) -> dict[str, Any]:
    return named_actor_options(name, namespace, get_if_exists=True, **HIGH_RATE)


class ActorStore:
    """`CacheStore` over a `CacheActor` handle: one actor hop per call."""

    def __init__(self, handle: Any) -> None:
        self._actor = handle

    async def get(self, key: str) -> CachedAnswer | None:
        return await self._actor.get.remote(key)

    async def set(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        await self._actor.set.remote(key, answer, ttl_s)

    async def delete(self, key: str) -> bool:
        return await self._actor.delete.remote(key)

    async def ttl(self, key: str) -> float | None:
        return await self._actor.ttl.remote(key)

    async def add_vector(self, record: VectorRecord) -> None:
        await self._actor.add_vector.remote(record)

    async def vectors_since(
        self, cursor: str | None, limit: int = 1000
    ) -> tuple[list[VectorRecord], str | None]:
        return await self._actor.vectors_since.remote(cursor, limit)

    async def record(self, delta: CacheStats) -> None:
        await self._actor.record.remote(delta)

    async def stats(self) -> CacheStats:
        return await self._actor.stats.remote()

    async def clear(self) -> None:
        await self._actor.clear.remote()

    async def close(self) -> None:
        return None


async def open_store(
    *,
    redis_url: str | None,
    ray_namespace: str,
    redis_namespace: str = "cache",
    actor_name: str = CACHE_ACTOR_NAME,
) -> CacheStore:
    """Redis when `redis_url` is set (REDIS_URL), else the named `CacheActor` (created if
    missing, and awaited ready before use)."""
    if redis_url:
        return RedisStore.from_url(redis_url, namespace=redis_namespace)
    import ray

    options = cache_actor_options(ray_namespace, actor_name)
    handle = ray.remote(CacheActor).options(**options).remote()
    await handle.ready.remote()
    return ActorStore(handle)
