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

This module is the ASGI middleware. The stores are in runtime/http/idempotency/store.py
(`MemoryIdempotencyStore`, `RedisIdempotencyStore`) and actor.py (the shared `IdempotencyActor`).
"""
from __future__ import annotations

from typing import Any

from runtime.http.asgi import header, read_body, replaying, send_error
from runtime.http.errors import ApiError
from runtime.http.idempotency.store import (
    DAY_S, IdempotencyStore, StoredResponse, fingerprint, storable, store_key,
)


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
        body = await read_body(receive)
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
            await self._run(scope, replaying(body, receive), send, key, decision.owner or "")

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


async def _replay(send: Any, response: StoredResponse) -> None:
    headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers]
    headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
