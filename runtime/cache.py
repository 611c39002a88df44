"""The exact response cache: canonical key, caching policy, cached value, stats, and the
in-process LRU front.

The key is a SHA-256 over a canonical JSON of everything that shapes an answer: every message
with its role, in order (system prompt included), the resolved route (chain or model),
temperature, max_tokens, top_p, stop, response_format and the tenant (the API key's owner; None
when the operator shares the cache). Nothing is lowercased or trimmed: "Hello" and "hello " are
different prompts. The `v1:` prefix changes whenever the canonical form does.

`ResponseCache` is the facade the router calls: `lookup` goes LRU front -> shared `CacheStore`
(runtime/cache_backends.py) -> semantic layer (runtime/semantic.py, when asked for); `store`
writes an answer after a miss. The cache never fails a request: a store error is a miss.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import ChatRequest, ChatResponse, FinishReason, Usage

if TYPE_CHECKING:
    from runtime.cache_backends import CacheStore

log = structlog.get_logger(__name__)

KEY_VERSION = "v1"
CacheMode = Literal["exact", "semantic", "off"]
DEFAULT_TTL_S = 24 * 3600.0
#: requests without an explicit `cache` mode are cached only at or below this temperature
DEFAULT_MAX_TEMPERATURE = 0.3
#: what an absent temperature means (the providers' default)
PROVIDER_DEFAULT_TEMPERATURE = 1.0


# ------------------------------------------------------------------------------------------
# Key
# ------------------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    # 0 and 0.0 (and -0.0) must hash alike: JSON would print them differently.
    return None if value is None else float(value) + 0.0


def canonical_fields(request: ChatRequest, *, route: str, tenant: str | None) -> dict[str, Any]:
    """Everything but the messages that the cache key covers (shared with the semantic layer)."""
    return {
        "route": route,
        "temperature": _number(request.temperature),
        "max_tokens": request.max_tokens,
        "top_p": _number(request.top_p),
        "stop": list(request.stop),
        "response_format": request.response_format,
        "tenant": tenant,
    }


def digest(payload: dict[str, Any]) -> str:
    """`v1:` + SHA-256 hex of the payload's canonical JSON."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{KEY_VERSION}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def cache_key(request: ChatRequest, *, route: str, tenant: str | None) -> str:
    """The exact-cache key of `request` served by `route`, scoped to `tenant` (None: shared)."""
    payload = canonical_fields(request, route=route, tenant=tenant)
    payload["messages"] = [[m.role, m.content] for m in request.messages]
    return digest(payload)


# ------------------------------------------------------------------------------------------
# Policy
# ------------------------------------------------------------------------------------------


def should_cache(
    request: ChatRequest,
    mode: CacheMode | None,
    *,
    max_temperature: float = DEFAULT_MAX_TEMPERATURE,
) -> bool:
    """`mode` is the request's `cache` field (None when absent). An explicit "exact" or
    "semantic" opts in, "off" opts out; otherwise only (near-)deterministic requests are cached:
    temperature <= `max_temperature`, an absent temperature counting as the provider default 1.0."""
    if mode == "off":
        return False
    if mode in ("exact", "semantic"):
        return True
    temperature = (
        PROVIDER_DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
    )
    return temperature <= max_temperature


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl_s: float = DEFAULT_TTL_S
    max_temperature: float = DEFAULT_MAX_TEMPERATURE
    #: one cache for all tenants (operator's choice); by default each API key owner has its own
    shared: bool = False
    #: use cases whose requests use the semantic layer without asking
    semantic_use_cases: frozenset[str] = frozenset()

    def cacheable(self, request: ChatRequest, mode: CacheMode | None) -> bool:
        return should_cache(request, mode, max_temperature=self.max_temperature)

    def semantic(self, mode: CacheMode | None, use_case: str | None) -> bool:
        return mode == "semantic" or (mode is None and use_case in self.semantic_use_cases)

    def scope(self, tenant: str | None) -> str | None:
        return None if self.shared else tenant


# ------------------------------------------------------------------------------------------
# Values
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A served answer as the cache keeps it. `cost_usd` is what the original call cost: the
    amount every later hit saves."""

    text: str
    finish_reason: FinishReason
    usage: Usage
    platform: str
    model: str
    cost_usd: float
    created_at: float

    @classmethod
    def from_response(
        cls, response: ChatResponse, *, cost_usd: float, created_at: float
    ) -> "CachedAnswer":
        return cls(
            text=response.text,
            finish_reason=response.finish_reason,
            usage=response.usage,
            platform=response.platform,
            model=response.model,
            cost_usd=cost_usd,
            created_at=created_at,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "CachedAnswer":
        data = json.loads(text)
        data["usage"] = Usage(**data["usage"])
        return cls(**data)


@dataclass(slots=True)
class CacheStats:
    """Counters (also used as a delta that a replica adds to the shared store's counters)."""

    hits: int = 0
    misses: int = 0
    semantic_hits: int = 0
    saved_usd: float = 0.0
    entries: int = 0

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    def __bool__(self) -> bool:
        return bool(self.hits or self.misses or self.semantic_hits or self.saved_usd)

    def add(self, other: "CacheStats") -> None:
        for f in ("hits", "misses", "semantic_hits", "saved_usd"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of GET /api/ai/cache/stats."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["saved_usd"] = round(self.saved_usd, 9)
        out["lookups"] = self.lookups
        out["hit_rate"] = round(self.hit_rate, 6)
        return out


# ------------------------------------------------------------------------------------------
# LRU with TTL
# ------------------------------------------------------------------------------------------

V = TypeVar("V")


@dataclass(slots=True)
class _Slot(Generic[V]):
    value: V
    expires_at: float  # clock.monotonic()


@dataclass
class LRUCache(Generic[V]):
    """Bounded, least-recently-used first out, each entry expiring `ttl_s` after it was set
    (on the injected clock's monotonic time). Not thread-safe: one event loop owns it."""

    max_entries: int
    clock: Clock = SYSTEM_CLOCK
    _slots: OrderedDict[str, _Slot[V]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        if self.max_entries < 1:
            raise ValueError("max_entries must be >= 1")

    def get(self, key: str) -> V | None:
        slot = self._slots.get(key)
        if slot is None:
            return None
        if slot.expires_at <= self.clock.monotonic():
            del self._slots[key]
            return None
        self._slots.move_to_end(key)
        return slot.value

    def set(self, key: str, value: V, ttl_s: float) -> None:
        if ttl_s <= 0:
            self._slots.pop(key, None)
            return
        self._slots[key] = _Slot(value, self.clock.monotonic() + ttl_s)
        self._slots.move_to_end(key)
        while len(self._slots) > self.max_entries:
            self._slots.popitem(last=False)

    def delete(self, key: str) -> bool:
        return self._slots.pop(key, None) is not None

    def ttl(self, key: str) -> float | None:
        """Seconds left, or None when absent or expired (does not touch recency)."""
        slot = self._slots.get(key)
        if slot is None:
            return None
        left = slot.expires_at - self.clock.monotonic()
        return left if left > 0 else None

    def purge_expired(self) -> int:
        now = self.clock.monotonic()
        dead = [k for k, s in self._slots.items() if s.expires_at <= now]
        for key in dead:
            del self._slots[key]
        return len(dead)

    def clear(self) -> None:
        self._slots.clear()

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None


# ------------------------------------------------------------------------------------------
# The facade
# ------------------------------------------------------------------------------------------

Source = Literal["front", "store", "semantic"]


class SemanticLayer(Protocol):
    """What `ResponseCache` needs from runtime/semantic.py's `SemanticCache`."""

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
        store: "CacheStore",
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
