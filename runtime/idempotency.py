"""Idempotency-Key on POST: a retried request gets the first answer instead of a second
provider call.

Semantics (Stripe's, which clients already know):
- The key is scoped by the caller's API key (its SHA-256, never the key): two tenants using the
  same Idempotency-Key never see each other's answers.
- The first request with a key runs and its answer (status, body, content headers and
  `x-switchboard-*` headers) is kept for `ttl_s` (24 h). A repeat with the same method, path,
  query and byte-identical body gets that answer back, marked `idempotent-replayed: true`,
  without touching the app (no provider call, no ledger row).
- The same key with another request → 409 `idempotency_key_reused`.
- A repeat while the first is still running → 409 `idempotency_in_progress` with Retry-After:
  an in-flight marker (expiring after the request timeout, so a crashed replica cannot block
  a key for a day) guarantees two concurrent duplicates never both reach the upstream.
- Only answers that would be the same on a retry are kept: 2xx and 4xx except 401, 403, 408,
  409, 425 and 429. A 5xx or a rate-limit refusal releases the key so the client can retry it.
- Streaming responses (`text/event-stream`) are never stored: they are relayed as they are
  produced and the key is released when they end (a repeat runs again). Bodies over
  `max_stored_bytes` are not stored either.

Stores: `MemoryIdempotencyStore` (one process: unit tests, and the state of the shared
`IdempotencyActor` in runtime/idempotency_actor.py) and `RedisIdempotencyStore` (REDIS_URL).
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
from runtime.errors import ApiError
from runtime.middleware import header, send_error

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


async def open_idempotency_store(*, redis_url: str | None, ray_namespace: str) -> IdempotencyStore:
    """Redis when REDIS_URL is set, else the named IdempotencyActor (created if missing)."""
    if redis_url:
        return RedisIdempotencyStore.from_url(redis_url)
    from runtime.idempotency_actor import open_actor_store

    return await open_actor_store(ray_namespace)


# ------------------------------------------------------------------------------------------
# The ASGI middleware
# ------------------------------------------------------------------------------------------

HEADER = b"idempotency-key"
MAX_KEY_CHARS = 255
DEFAULT_MAX_STORED_BYTES = 1024 * 1024
KEPT_HEADERS = ("content-type", "content-length")
IN_PROGRESS_RETRY_S = 1


class IdempotencyMiddleware:
    """Applies the semantics in the module docstring to POST requests that carry an
    Idempotency-Key and a bearer token (without one the app answers 401 anyway). Sits inside
    the body limit, so the body it buffers is already bounded."""

    def __init__(
        self,
        app: Any,
        store: IdempotencyStore,
        *,
        ttl_s: float = DAY_S,
        in_flight_ttl_s: float = 300.0,
        max_stored_bytes: int = DEFAULT_MAX_STORED_BYTES,
    ) -> None:
        self.app = app
        self.store = store
        self.ttl_s = ttl_s
        self.in_flight_ttl_s = in_flight_ttl_s
        self.max_stored_bytes = max_stored_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        idem_key = header(scope, HEADER) if scope["type"] == "http" and scope["method"] == "POST" else None
        token = _bearer(header(scope, b"authorization"))
        if idem_key is None or token is None:
            await self.app(scope, receive, send)
            return
        if not (0 < len(idem_key) <= MAX_KEY_CHARS and idem_key.isprintable() and idem_key.isascii()):
            await send_error(send, _error(400, "invalid_request", f"Idempotency-Key must be 1-{MAX_KEY_CHARS} printable ASCII characters"))
            return
        body = await _read_body(receive)
        if body is None:
            return  # the client left while sending
        key = store_key(token, idem_key)
        fp = fingerprint(scope["method"], scope["path"], scope.get("query_string", b""), body)
        try:
            decision = await self.store.begin(key, fp, self.in_flight_ttl_s)
        except Exception:  # noqa: BLE001 - fail closed: never risk a second upstream call
            await send_error(send, _error(503, "idempotency_unavailable", "the idempotency store is unavailable; retry later"))
            return
        if decision.verdict == "replay" and decision.response is not None:
            await _replay(send, decision.response)
        elif decision.verdict == "conflict":
            await send_error(send, _error(409, "idempotency_key_reused",
                                          "this Idempotency-Key was used with a different request"))
        elif decision.verdict == "in_flight":
            await send_error(send, _error(409, "idempotency_in_progress",
                                          "a request with this Idempotency-Key is still running",
                                          headers={"retry-after": str(IN_PROGRESS_RETRY_S)}))
        else:
            await self._run(scope, _replaying(body, receive), send, key, decision.owner or "")

    async def _run(self, scope: dict[str, Any], receive: Any, send: Any, key: str, owner: str) -> None:
        status, headers, chunks, size, keep = 0, [], [], 0, True

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status, headers, size, keep
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in message.get("headers", ())]
                keep = storable(status) and not dict(headers).get("content-type", "").startswith("text/event-stream")
            elif message["type"] == "http.response.body" and keep:
                size += len(message.get("body", b""))
                keep = size <= self.max_stored_bytes
                if keep:
                    chunks.append(message.get("body", b""))
            await send(message)

        stored = False
        try:
            await self.app(scope, receive, capture)
            if keep and status:
                kept = tuple((k, v) for k, v in headers if k in KEPT_HEADERS or k.startswith("x-switchboard-"))
                await self.store.finish(key, owner, StoredResponse(status, kept, b"".join(chunks)), self.ttl_s)
                stored = True
        finally:
            if not stored:
                await self.store.abandon(key, owner)


def _bearer(value: str | None) -> str | None:
    scheme, _, token = (value or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _error(status: int, type_: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(status, type_, message, field="Idempotency-Key", headers=headers)


async def _read_body(receive: Any) -> bytes | None:
    """The whole request body (the body limit outside bounds it); None if the client left."""
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replaying(body: bytes, receive: Any) -> Any:
    """A `receive` that hands the app the buffered body, then defers to the real one (for
    `http.disconnect`)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _replay(send: Any, response: StoredResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
