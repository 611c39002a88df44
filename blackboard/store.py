"""Blackboard stores: one async interface, an in-memory store (default) and a Redis store.

Memory: per-session lists in write order; TTL on the injected clock, refreshed on write.
Sessions are kept in an OrderedDict ordered by expiry (a write moves its session to the end),
so expired sessions are dropped from the front in amortized O(1).

Redis: per session, under `switchboard:bb:<namespace>:{<session>}:` (the hash tag keeps a
session's keys in one cluster slot)
  - `idx`  sorted set, member = entry id, score = per-session sequence (write order)
  - `data` hash, entry id -> entry JSON
  - `seq`  the sequence counter
A write is one Lua script (bound check, sequence, insert, TTL on all three keys); a read is one
MULTI/EXEC round trip (ZRANGE + HGETALL); clear is one MULTI/EXEC (ZCARD + UNLINK).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from blackboard.models import (
    BlackboardFull,
    Entry,
    EntryFields,
    IdFactory,
    InvalidEntry,
    Limits,
    make_entry,
    matches,
    validate_fields,
    validate_session_id,
)
from providers.clock import SYSTEM_CLOCK, Clock

KEY_ROOT = "switchboard:bb:"
NAMESPACE_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@runtime_checkable
class BlackboardStore(Protocol):
    """What every backend implements (and what the Blackboard actor exposes)."""

    async def write(self, session_id: str, fields: EntryFields) -> Entry: ...

    async def read_all(self, session_id: str) -> list[Entry]: ...

    async def read(
        self,
        session_id: str,
        *,
        agent: str | None = None,
        role: str | None = None,
        platform: str | None = None,
    ) -> list[Entry]: ...

    async def clear(self, session_id: str) -> int: ...

    async def sessions(self) -> list[str]: ...

    async def close(self) -> None: ...


class _FilteredRead:
    """`read` as a filter over the subclass's `read_all`, shared by both stores."""

    async def read(
        self,
        session_id: str,
        *,
        agent: str | None = None,
        role: str | None = None,
        platform: str | None = None,
    ) -> list[Entry]:
        """Entries of the session (write order) matching every filter given."""
        entries = await self.read_all(session_id)  # type: ignore[attr-defined]
        return [e for e in entries if matches(e, agent, role, platform)]


# ------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Session:
    expires_at: float
    entries: list[Entry] = field(default_factory=list)


class MemoryStore(_FilteredRead):
    """Process-local store; its state dies with the process (or the actor)."""

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, limits: Limits = Limits()) -> None:
        self._clock = clock
        self._limits = limits
        self._ids = IdFactory(clock)
        self._sessions: OrderedDict[str, _Session] = OrderedDict()

    async def write(self, session_id: str, fields: EntryFields) -> Entry:
        validate_session_id(session_id)
        new = validate_fields(fields, self._limits)
        self._purge_expired()
        now = self._clock.monotonic()
        session = self._sessions.get(session_id) or _Session(expires_at=now)
        if len(session.entries) >= self._limits.max_entries:
            raise BlackboardFull(session_id, self._limits.max_entries)
        entry = make_entry(session_id, new, self._ids.next_id(), self._clock.time())
        session.entries.append(entry)
        session.expires_at = now + self._limits.ttl_s
        self._sessions[session_id] = session
        self._sessions.move_to_end(session_id)
        return entry

    async def read_all(self, session_id: str) -> list[Entry]:
        validate_session_id(session_id)
        self._purge_expired()
        session = self._sessions.get(session_id)
        return list(session.entries) if session else []

    async def clear(self, session_id: str) -> int:
        validate_session_id(session_id)
        self._purge_expired()
        session = self._sessions.pop(session_id, None)
        return len(session.entries) if session else 0

    async def sessions(self) -> list[str]:
        self._purge_expired()
        return list(self._sessions)

    async def close(self) -> None:
        self._sessions.clear()

    def _purge_expired(self) -> None:
        now = self._clock.monotonic()
        while self._sessions:
            session_id, session = next(iter(self._sessions.items()))
            if session.expires_at > now:
                return
            del self._sessions[session_id]


# ------------------------------------------------------------------------------------------
# Redis
# ------------------------------------------------------------------------------------------

# KEYS: idx, data, seq. ARGV: entry id, entry JSON, max entries, ttl (ms).
# Returns the entry's sequence number, -1 when the session is full, -2 on an id collision.
_WRITE_SCRIPT = """
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return -1 end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -2 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
return seq
"""

_MAX_ID_ATTEMPTS = 3


def session_keys(namespace: str, session_id: str) -> tuple[str, str, str]:
    """The (idx, data, seq) keys of one session."""
    base = f"{KEY_ROOT}{namespace}:{{{session_id}}}:"
    return base + "idx", base + "data", base + "seq"


class RedisStore(_FilteredRead):
    """Shared, restart-proof store. `client` is a `redis.asyncio.Redis` (tests inject one)."""

    def __init__(
        self,
        client,
        *,
        namespace: str = "default",
        clock: Clock = SYSTEM_CLOCK,
        limits: Limits = Limits(),
    ) -> None:
        if not NAMESPACE_PATTERN.match(namespace):
            raise InvalidEntry(f"invalid blackboard namespace {namespace!r}")
        self._client = client
        self._namespace = namespace
        self._clock = clock
        self._limits = limits
        self._ids = IdFactory(clock)
        self._write_script = client.register_script(_WRITE_SCRIPT)

    @classmethod
    def from_url(cls, url: str, **kwargs) -> "RedisStore":
        import redis.asyncio as aioredis

        return cls(aioredis.Redis.from_url(url), **kwargs)

    @property
    def namespace(self) -> str:
        return self._namespace

    async def write(self, session_id: str, fields: EntryFields) -> Entry:
        validate_session_id(session_id)
        new = validate_fields(fields, self._limits)
        keys = session_keys(self._namespace, session_id)
        ttl_ms = max(1, int(self._limits.ttl_s * 1000))
        for _ in range(_MAX_ID_ATTEMPTS):
            entry = make_entry(session_id, new, self._ids.next_id(), self._clock.time())
            args = [entry.id, entry.to_json(), self._limits.max_entries, ttl_ms]
            result = int(await self._write_script(keys=list(keys), args=args))
            if result == -1:
                raise BlackboardFull(session_id, self._limits.max_entries)
            if result != -2:
                return entry
        raise RuntimeError("blackboard id collided repeatedly; is the random source broken?")

    async def read_all(self, session_id: str) -> list[Entry]:
        validate_session_id(session_id)
        idx, data, _ = session_keys(self._namespace, session_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zrange(idx, 0, -1)
            pipe.hgetall(data)
            ids, values = await pipe.execute()
        by_id = {_text(k): v for k, v in values.items()}
        return [Entry.from_json(by_id[i]) for i in map(_text, ids) if i in by_id]

    async def clear(self, session_id: str) -> int:
        validate_session_id(session_id)
        keys = session_keys(self._namespace, session_id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.zcard(keys[0])
            pipe.unlink(*keys)
            count, _ = await pipe.execute()
        return int(count)

    async def sessions(self) -> list[str]:
        prefix = f"{KEY_ROOT}{self._namespace}:{{"
        found: list[str] = []
        async for key in self._client.scan_iter(match=_glob_escape(prefix) + "*}:idx", count=500):
            text = _text(key)
            found.append(text[len(prefix) : -len("}:idx")])
        return sorted(found)

    async def close(self) -> None:
        await self._client.aclose()


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def make_store(
    redis_url: str | None,
    *,
    namespace: str = "default",
    clock: Clock = SYSTEM_CLOCK,
    limits: Limits = Limits(),
) -> MemoryStore | RedisStore:
    """Redis when a URL is configured, else memory."""
    if redis_url:
        return RedisStore.from_url(redis_url, namespace=namespace, clock=clock, limits=limits)
    return MemoryStore(clock=clock, limits=limits)


__all__ = ["BlackboardStore", "KEY_ROOT", "MemoryStore", "RedisStore", "make_store", "session_keys"]
