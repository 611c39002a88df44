"""Per-API-key request limits (requests/minute), enforced cluster-wide.

A key's `rpm` (on its Principal; None = unlimited) is checked right after authentication, in
every replica against ONE shared window: Redis (a sorted-set sliding log, checked and charged in
one Lua script) when REDIS_URL is set, else one named `KeyRateActor` whose windows are
providers/limits.py `LimitState`s (the exact sliding log the provider limits use), which
replicas admit against by lease (runtime/http/key_leases.py: one hop per slice, not per request). Over the
limit → 429 `rate_limited` with Retry-After = when the oldest request in the window expires.

If the shared store cannot be reached the request is let through and a warning is logged: a
per-key request cap protects fairness, not money (budgets and provider limits still apply).
"""
from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from providers.leases import holder_name
from providers.limits import MINUTE_S
from providers.named_actor import HIGH_RATE, named_actor_options
from runtime.http.errors import ApiError
from runtime.http.key_leases import ActorKeyDesk, KeyLeaseDesk, KeySlice, LeasedKeyRate

ACTOR_NAME = "key_rate"
log = structlog.get_logger("switchboard.key_rate")


class KeyRateLimiter(Protocol):
    async def admit(self, key_id: str, rpm: int) -> float | None:
        """Charge one request to `key_id`: None if admitted, else seconds until it would be."""


@dataclass
class MemoryKeyRate:
    """One `LimitState` (requests/minute only) per key, on the injected clock; the windows
    are the ones its `desk` lends slices of (runtime/http/key_leases.py)."""

    clock: Clock = SYSTEM_CLOCK
    desk: KeyLeaseDesk = field(init=False)

    def __post_init__(self) -> None:
        self.desk = KeyLeaseDesk(self.clock)

    async def admit(self, key_id: str, rpm: int) -> float | None:
        if rpm <= 0:
            raise ValueError("rpm must be > 0")
        state = self.desk.state(key_id, rpm)
        now = self.clock.monotonic()
        reservation = state.try_acquire(0, now)
        if reservation is not None:
            state.release(reservation)  # no in-flight limit: the charge stays in the window
            return None
        return max(0.0, state.when_available(0, now) - now)


_ADMIT = """
local now, window, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return -1
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tonumber(oldest[2]) + window - now
"""


class RedisKeyRate:
    """A sliding one-minute log per key in a sorted set (scores: wall-clock ms from the
    injected clock), checked and charged atomically."""

    def __init__(
        self, client: Any, namespace: str = "keyrate", *, clock: Clock = SYSTEM_CLOCK, prefix: str | None = None
    ) -> None:
        self._redis = client
        self.prefix = prefix or f"switchboard:{namespace}:"
        self._clock = clock

    @classmethod
    def from_url(cls, url: str, namespace: str = "keyrate") -> "RedisKeyRate":
        import redis.asyncio as redis

        return cls(redis.Redis.from_url(url, socket_connect_timeout=2), namespace)

    async def admit(self, key_id: str, rpm: int) -> float | None:
        now_ms = int(self._clock.time() * 1000)
        wait_ms = await self._redis.eval(
            _ADMIT, 1, self.prefix + key_id, now_ms, int(MINUTE_S * 1000), rpm, uuid.uuid4().hex
        )
        return None if int(wait_ms) < 0 else int(wait_ms) / 1000.0

    async def close(self) -> None:
        await self._redis.aclose()


class KeyRateActor(MemoryKeyRate):
    """The named actor shared by all replicas: `ray.remote(KeyRateActor).options(...)`. A
    restart forgets the last minute (at most one extra minute's worth of requests)."""

    async def ready(self) -> bool:
        return True

    async def lend_key(self, key_id: str, rpm: int, holder: str, want: int,
                       returned: list[tuple[int, int]]) -> KeySlice:
        self.desk.give_back(returned)
        return self.desk.lend(key_id, rpm, holder, want)

    async def give_back_keys(self, returned: list[tuple[int, int]]) -> None:
        self.desk.give_back(returned)


def key_rate_actor_options(namespace: str, name: str = ACTOR_NAME) -> dict[str, Any]:
    return named_actor_options(name, namespace, get_if_exists=True, **HIGH_RATE)


async def open_key_rate(*, redis_url: str | None, ray_namespace: str, name: str = ACTOR_NAME) -> KeyRateLimiter:
    """Redis when REDIS_URL is set, else slices leased from the named KeyRateActor (created if
    missing)."""
    if redis_url:
        return RedisKeyRate.from_url(redis_url)
    import ray

    handle = ray.remote(KeyRateActor).options(**key_rate_actor_options(ray_namespace, name)).remote()
    await handle.ready.remote()
    return LeasedKeyRate(ActorKeyDesk(handle), holder_name())


async def enforce(limiter: KeyRateLimiter | None, principal: Any) -> None:
    """429 with Retry-After when the principal's key is over its requests/minute."""
    rpm = getattr(principal, "rpm", None)
    if limiter is None or not rpm:
        return
    key_id = getattr(principal, "key_id", None) or principal.user_id
    try:
        wait_s = await limiter.admit(key_id, int(rpm))
    except Exception as exc:  # noqa: BLE001 - see the module docstring: fail open, loudly
        log.warning("key_rate_unavailable", key_id=key_id, error_type=type(exc).__name__)
        return
    if wait_s is not None:
        raise ApiError(
            429, "rate_limited", f"API key {key_id} is limited to {rpm} requests per minute",
            headers={"retry-after": str(max(1, math.ceil(wait_s)))},
        )
