"""What the cache keeps: the cached answer, the hit/miss counters, and the in-process LRU with
TTL that both the replicas' fronts and the in-memory store are made of."""
from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Generic, TypeVar

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import ChatResponse, FinishReason, Thinking, ToolCall, Usage

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
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    thinking: tuple[Thinking, ...] = ()

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
            tool_calls=response.tool_calls,
            reasoning=response.reasoning,
            thinking=response.thinking,
        )

    def response(self, *, latency_ms: float) -> ChatResponse:
        """The answer as served from the cache (no upstream attempt)."""
        return ChatResponse(self.text, self.usage, self.finish_reason, self.platform, self.model,
                            latency_ms=latency_ms, attempts=0, tool_calls=self.tool_calls,
                            reasoning=self.reasoning, thinking=self.thinking)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "CachedAnswer":
        data = json.loads(text)
        data["usage"] = Usage(**data["usage"])
        data["tool_calls"] = tuple(ToolCall(**c) for c in data.get("tool_calls") or ())
        data["thinking"] = tuple(Thinking(**t) for t in data.get("thinking") or ())
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
