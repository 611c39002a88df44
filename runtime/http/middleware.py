"""Pure ASGI middleware for the HTTP edge: the request body limit and the one-line request log.

Order (outermost first), as `runtime/http/api.py` installs them:

    RequestLogMiddleware   request id (X-Request-ID in and out, bound with structlog.contextvars),
                           one JSON log line and one metrics sample per request, whatever
                           happened inside (413s and idempotent replays too)
    BodyLimitMiddleware    413 before anything parses the body: Content-Length checked up front,
                           streamed (chunked) bodies counted as they arrive
    IdempotencyMiddleware  (runtime/http/idempotency/middleware.py) replays answers for a repeated Idempotency-Key
    ChatFastPath           (runtime/http/fast_chat.py) POST /v1/chat/completions past FastAPI's routing
    FastAPI app

Pure ASGI rather than Starlette's BaseHTTPMiddleware: no extra task per request, streaming
responses pass through untouched, and the body limit can act on `receive` itself.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog

from runtime import request_log
from runtime.http.asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error
from runtime.http.errors import ApiError
from runtime.metrics import Metrics, NullMetrics

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
REQUEST_ID_HEADER = b"x-request-id"


def too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body exceeds {limit} bytes", field="body")


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with 413, before the app reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be > 0")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await send_error(send, too_large(self.max_bytes))
            return
        seen = 0
        started = refused = False

        async def counted_receive() -> Message:
            # Past the limit: answer 413 here and tell the app the client left. Raising instead
            # would not survive Starlette's task groups (an ExceptionGroup becomes a 400).
            nonlocal seen, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not started:
                    refused = True
                    await send_error(send, too_large(self.max_bytes))
                    return {"type": "http.disconnect"}
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; whatever the app says afterwards is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except Exception:
            if not refused:
                raise


#: set by a handler that answers without a FastAPI route (runtime/http/fast_chat.py)
ENDPOINT_KEY = "switchboard.endpoint"


def endpoint_of(scope: Scope) -> str:
    """The route that answered: its path pattern (never the raw path: ids would explode the
    metric's labels), or "unmatched"."""
    return scope.get(ENDPOINT_KEY) or getattr(scope.get("route"), "path", "unmatched")


class RequestLogMiddleware:
    """One structured log line per request (and per WebSocket session): request id, method,
    path (never the query string: it can carry keys), status, latency, and every field the
    request path noted (runtime/request_log.py: key id, use case, chain, platform, model,
    tokens, cost, cache, fallback, attempts). The request id comes from a safe `X-Request-ID`
    or is minted here, is echoed as `x-request-id`, and is bound with structlog.contextvars so
    every other log line of the request carries it. Each HTTP request is also counted in
    `metrics` by endpoint (the matched route's path), status and latency."""

    def __init__(self, app: ASGIApp, logger: Any = None, event: str = "request",
                 metrics: Metrics | None = None) -> None:
        self.app = app
        self.log = logger or structlog.get_logger("switchboard.http")
        self.event = event
        self.metrics = metrics or NullMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_log.accept_request_id(header(scope, REQUEST_ID_HEADER))
        token = request_log.begin(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def logged_send(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id.encode())]}
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and status is None:
                status = 403  # closed before accepting: refused
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, logged_send)
            except BaseException as exc:  # cancelled: the client left (nginx's 499)
                status = status or (499 if isinstance(exc, asyncio.CancelledError) else 500)
                request_log.note(error_type=type(exc).__name__)
                raise
            finally:
                record = request_log.end(token)
                latency_ms = (time.perf_counter() - started) * 1000.0
                self._write(scope, status, latency_ms, record)
                if scope["type"] == "http":
                    self.metrics.request(endpoint_of(scope), status or 499, latency_ms)

    def _write(self, scope: Scope, status: int | None, latency_ms: float, record: dict[str, Any]) -> None:
        fields = {
            "method": scope.get("method", "WS"),
            "path": scope.get("path", ""),
            "status": status if status is not None else 499,  # the client left before an answer
            "latency_ms": round(latency_ms, 3),
            **record,
        }
        if "cost_usd" in fields:
            fields["cost_usd"] = round(fields["cost_usd"], 10)
        level = self.log.error if fields["status"] >= 500 else self.log.info
        level(self.event, **fields)
