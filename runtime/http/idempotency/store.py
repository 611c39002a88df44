"""Where Idempotency-Key answers are kept (semantics: runtime/http/idempotency/middleware.py).

`MemoryIdempotencyStore` (one process: unit tests, and the state of the shared `IdempotencyActor`
in runtime/http/idempotency/actor.py) and `RedisIdempotencyStore` (REDIS_URL).
"""
from __future__ import annotations

import hashlib
import json
import uuid
from base64 import b64decode, b64encode
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from providers.clock import SYSTEM_CLOCK, Clock

DAY_S = 86_400.0
DEFAULT_MAX_ENTRIES = 100_000
NOT_STORED = frozenset({401, 403, 408, 409, 425, 429})
Verdict = Literal["proceed", "replay", "conflict", "in_flight"]


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": [list(h) for h in self.headers],
                "body": b64encode(self.body).decode()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StoredResponse":
        return cls(data["status"], tuple((k, v) for k, v in data["headers"]), b64decode(data["body"]))


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    owner: str | None = None  # set with "proceed": who holds the in-flight marker
    response: StoredResponse | None = None  # set with "replay"


def storable(status: int) -> bool:
    return status < 500 and status not in NOT_STORED


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    h = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def store_key(tenant_token: str, idempotency_key: str) -> str:
    """`<digest of the API key>:<digest of the Idempotency-Key>`: no secret is stored."""
    tenant = hashlib.sha256(tenant_token.encode()).hexdigest()[:32]
    return f"{tenant}:{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"


class IdempotencyStore(Protocol):
    async def begin(self, key: str, fp: str, in_flight_ttl_s: float) -> Decision: ...

    async def finish(self, key: str, owner: str, response: StoredResponse, ttl_s: float) -> None: ...

    async def abandon(self, key: str, owner: str) -> None: ...


@dataclass
class _Entry:
    fp: str
    owner: str
    expires: float
    response: StoredResponse | None = None


@dataclass
class MemoryIdempotencyStore:
    """In-process store; entries expire on the injected clock. Bounded: the oldest entries go
    first past `max_entries`."""

    clock: Clock = SYSTEM_CLOCK
    max_entries: int = DEFAULT_MAX_ENTRIES
    _entries: "OrderedDict[str, _Entry]" = field(default_factory=OrderedDict)

    async def begin(self, key: str, fp: str, in_flight_ttl_s: float) -> Decision:
        now = self.clock.monotonic()
        self._purge(now)
        entry = self._entries.get(key)
        if entry is not None and entry.expires <= now:
            del self._entries[key]
            entry = None
        if entry is None:
            owner = uuid.uuid4().hex
            self._entries[key] = _Entry(fp, owner, now + in_flight_ttl_s)
            return Decision("proceed", owner=owner)
        if entry.fp != fp:
            return Decision("conflict")
        if entry.response is None:
            return Decision("in_flight")
        return Decision("replay", response=entry.response)

    async def finish(self, key: str, owner: str, response: StoredResponse, ttl_s: float) -> None:
        entry = self._entries.get(key)
        if entry is None or entry.owner != owner:
            return  # the marker expired and someone else took the key: theirs stands
        entry.response, entry.expires = response, self.clock.monotonic() + ttl_s
        self._entries.move_to_end(key)

    async def abandon(self, key: str, owner: str) -> None:
        entry = self._entries.get(key)
        if entry is not None and entry.owner == owner and entry.response is None:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now and len(self._entries) < self.max_entries:
                return
            del self._entries[key]


_FINISH = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local e = cjson.decode(cur)
if e['owner'] ~= ARGV[1] then return 0 end
e['response'] = cjson.decode(ARGV[2])
redis.call('SET', KEYS[1], cjson.encode(e), 'PX', ARGV[3])
return 1
"""
_ABANDON = """
local cur = redis.call('GET', KEYS[1])
if not cur then return 0 end
local e = cjson.decode(cur)
if e['owner'] ~= ARGV[1] or e['response'] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class RedisIdempotencyStore:
    """Shared by every replica through Redis: `SET NX PX` takes the key, Lua scripts finish or
    release it only for the owner. Keys live under `switchboard:<namespace>:`."""

    def __init__(self, client: Any, namespace: str = "idem", *, prefix: str | None = None) -> None:
        self._redis = client
        self.prefix = prefix or f"switchboard:{namespace}:"

    @classmethod
    def from_url(cls, url: str, namespace: str = "idem") -> "RedisIdempotencyStore":
        import redis.asyncio as redis

        return cls(redis.Redis.from_url(url, socket_connect_timeout=2), namespace)

    async def begin(self, key: str, fp: str, in_flight_ttl_s: float) -> Decision:
        k = self.prefix + key
        for _ in range(3):  # the entry can expire between SET NX and GET
            owner = uuid.uuid4().hex
            marker = json.dumps({"fp": fp, "owner": owner})
            if await self._redis.set(k, marker, nx=True, px=max(1, int(in_flight_ttl_s * 1000))):
                return Decision("proceed", owner=owner)
            raw = await self._redis.get(k)
            if raw is None:
                continue
            entry = json.loads(raw)
            if entry["fp"] != fp:
                return Decision("conflict")
            if entry.get("response") is None:
                return Decision("in_flight")
            return Decision("replay", response=StoredResponse.from_json(entry["response"]))
        return Decision("in_flight")

    async def finish(self, key: str, owner: str, response: StoredResponse, ttl_s: float) -> None:
        value = json.dumps(response.to_json())
        await self._redis.eval(_FINISH, 1, self.prefix + key, owner, value, max(1, int(ttl_s * 1000)))

    async def abandon(self, key: str, owner: str) -> None:
        await self._redis.eval(_ABANDON, 1, self.prefix + key, owner)

    async def close(self) -> None:
        await self._redis.aclose()
