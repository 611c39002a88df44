"""The exact response cache's facade, one per replica.

`ResponseCache` is what the gateway calls: `lookup` goes LRU front -> shared `CacheStore`
(runtime/cache/stores.py) -> semantic layer (runtime/cache/semantic.py, when asked for); `store`
writes an answer after a miss. The key and policy are in runtime/cache/keys.py. The cache never
fails a request: a store error is a miss.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import ChatRequest
from runtime.cache.entries import CachedAnswer, CacheStats, LRUCache
from runtime.cache.keys import CacheMode, CachePolicy, cache_key
from runtime.cache.stores import CacheStore

log = structlog.get_logger(__name__)

# ------------------------------------------------------------------------------------------
# The facade
# ------------------------------------------------------------------------------------------

Source = Literal["front", "store", "semantic"]


class SemanticLayer(Protocol):
    """What `ResponseCache` needs from runtime/cache/semantic.py's `SemanticCache`."""

    async def probe(self, request: ChatRequest, *, route: str, tenant: str | None) -> Any: ...

    async def add(self, probe: Any, key: str, ttl_s: float) -> None: ...

    def forget(self, key: str) -> None: ...


@dataclass(frozen=True, slots=True)
class CacheLookup:
    """The outcome of `ResponseCache.lookup`; pass it back to `store` after a miss."""

    key: str | None  # None: the request is not cacheable (bypass)
    answer: CachedAnswer | None = None
    source: Source | None = None
    score: float | None = None  # cosine similarity of a semantic hit
    probe: Any = None  # the semantic probe (its embedding is reused by `store`)

    @property
    def hit(self) -> bool:
        return self.answer is not None


class ResponseCache:
    """Exact (and optionally semantic) response cache for one replica: an LRU front in front of
    the shared store (`front_ttl_s` caps how long a replica may serve an entry another replica
    deleted). Counters are batched per replica and flushed to the store in the
    background (one flush in flight at a time); `stats()` flushes first."""

    def __init__(
        self,
        store: CacheStore,
        *,
        policy: CachePolicy = CachePolicy(),
        semantic: SemanticLayer | None = None,
        front_entries: int = 1024,
        front_ttl_s: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.backend = store
        self.policy = policy
        self.semantic = semantic
        self.front_ttl_s = front_ttl_s
        self._clock = clock
        self._front: LRUCache[CachedAnswer] = LRUCache(front_entries, clock)
        self._pending = CacheStats()
        self._flush: asyncio.Task | None = None

    async def lookup(
        self,
        request: ChatRequest,
        *,
        route: str,
        tenant: str | None,
        mode: CacheMode | None = None,
        use_case: str | None = None,
    ) -> CacheLookup:
        if not self.policy.cacheable(request, mode):
            return CacheLookup(key=None)
        scope = self.policy.scope(tenant)
        key = cache_key(request, route=route, tenant=scope)
        found = await self._exact(key)
        if found is not None:
            return found
        probe = None
        if self.semantic is not None and self.policy.semantic(mode, use_case):
            probe, found = await self._semantic(request, route, scope, key)
            if found is not None:
                return found
        self._count(CacheStats(misses=1))
        return CacheLookup(key=key, probe=probe)

    async def store(self, lookup: CacheLookup, answer: CachedAnswer) -> None:
        """Keep `answer` for the request `lookup` missed (no-op for a bypass, a hit, or an
        answer that ended in error)."""
        if lookup.key is None or lookup.hit or answer.finish_reason == "error":
            return
        ttl_s = self.policy.ttl_s
        self._front.set(lookup.key, answer, min(ttl_s, self.front_ttl_s))
        try:
            await self.backend.set(lookup.key, answer, ttl_s)
            if self.semantic is not None and lookup.probe is not None:
                await self.semantic.add(lookup.probe, lookup.key, ttl_s)
        except Exception as exc:  # noqa: BLE001 - the cache never fails a request
            log.warning("cache.store_failed", error=repr(exc))

    async def stats(self) -> CacheStats:
        await self.flush_stats()
        return await self.backend.stats()

    async def flush_stats(self) -> None:
        """Push this replica's pending counters to the store now."""
        while self._flush is not None and not self._flush.done():
            await asyncio.shield(self._flush)
        await self._push()

    async def close(self) -> None:
        await self.flush_stats()

    async def _exact(self, key: str) -> CacheLookup | None:
        answer = self._front.get(key)
        if answer is not None:
            self._count_hit(answer, semantic=False)
            return CacheLookup(key=key, answer=answer, source="front")
        answer = await self._get(key)
        if answer is None:
            return None
        self._fill_front(key, answer)
        self._count_hit(answer, semantic=False)
        return CacheLookup(key=key, answer=answer, source="store")

    async def _semantic(
        self, request: ChatRequest, route: str, scope: str | None, key: str
    ) -> tuple[Any, CacheLookup | None]:
        assert self.semantic is not None
        try:
            probe = await self.semantic.probe(request, route=route, tenant=scope)
        except Exception as exc:  # noqa: BLE001
            log.warning("cache.semantic_failed", error=repr(exc))
            return None, None
        if probe is None or probe.match is None:
            return probe, None
        matched_key, score = probe.match
        answer = await self._get(matched_key)
        if answer is None:  # expired or evicted since it was indexed
            self.semantic.forget(matched_key)
            return probe, None
        self._count_hit(answer, semantic=True)
        return probe, CacheLookup(key=key, answer=answer, source="semantic", score=score)

    async def _get(self, key: str) -> CachedAnswer | None:
        try:
            return await self.backend.get(key)
        except Exception as exc:  # noqa: BLE001 - a store outage is a miss
            log.warning("cache.get_failed", error=repr(exc))
            return None

    def _fill_front(self, key: str, answer: CachedAnswer) -> None:
        left = answer.created_at + self.policy.ttl_s - self._clock.time()
        self._front.set(key, answer, min(left, self.front_ttl_s))

    def _count_hit(self, answer: CachedAnswer, *, semantic: bool) -> None:
        self._count(
            CacheStats(hits=1, semantic_hits=int(semantic), saved_usd=answer.cost_usd)
        )

    def _count(self, delta: CacheStats) -> None:
        self._pending.add(delta)
        if self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._push())

    async def _push(self) -> None:
        while self._pending:
            delta, self._pending = self._pending, CacheStats()
            try:
                await self.backend.record(delta)
            except Exception as exc:  # noqa: BLE001 - keep the counts for the next flush
                self._pending.add(delta)
                log.warning("cache.stats_flush_failed", error=repr(exc))
                return
