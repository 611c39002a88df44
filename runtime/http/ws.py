"""WebSocket `/api/ai/stream`: a routed answer streamed as JSON messages.

    client → {"type": "auth", "key": "sk-…"}        only without an `Authorization: Bearer` header
    server ← {"type": "ready", "key_id": …}
    client → {"query": "…", "use_case": "code", "priority": "speed", …}   (POST /api/ai/route's fields)
    server ← {"type": "chunk", "text": "…"} …
    server ← {"type": "done", "request_id", "platform", "model", "chain", "usage", "cost_usd",
              "latency_ms", "attempts", "fallback_used", "cache", "finish_reason"}
          or {"type": "error", "error": {"type", "message", "field"?}}

One socket carries any number of requests, one after the other. A bad request gets an error
message and the socket stays open; failed authentication closes it (code 1008). Fallback happens
before the first chunk (as with SSE); an upstream failure after it ends that request with an
error message. Each request is recorded in the ledger like any other (gateway.stream).
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.datastructures import Headers

from providers.types import ProviderError
from runtime import request_log
from runtime.http.errors import ApiError, _field_of, to_api_error
from runtime.http.key_rate import enforce
from runtime.http.route_call import prepare_route
from runtime.http.schemas import FORBIDDEN_FIELDS, RouteBody
from runtime.http.services import Services

PATH = "/api/ai/stream"
AUTH_TIMEOUT_S = 10.0
POLICY_VIOLATION = 1008


class _TokenOnly:
    """What the Authenticator reads from a request: its headers (for first-message auth)."""

    def __init__(self, key: str) -> None:
        self.headers = Headers({"authorization": f"Bearer {key}"})


def error_message(error: ApiError) -> dict[str, Any]:
    body = error.body()["error"]
    return {"type": "error", "error": {k: v for k, v in body.items() if k in ("type", "message", "field")}}


def router(services: Services) -> APIRouter:
    router = APIRouter()

    @router.websocket(PATH)
    async def stream(ws: WebSocket) -> None:
        await ws.accept()
        try:
            who = await _authenticate(services, ws)
            if who is None:
                return
            await ws.send_json({"type": "ready", "key_id": who.key_id})
            while True:
                raw = await ws.receive_text()
                await _answer(services, ws, who, raw)
        except WebSocketDisconnect:
            return

    return router


async def _authenticate(services: Services, ws: WebSocket) -> Any:
    """The principal, or None after telling the client why and closing."""
    try:
        if ws.headers.get("authorization"):
            return await services.auth.authenticate(ws)
        first = json.loads(await asyncio.wait_for(ws.receive_text(), AUTH_TIMEOUT_S))
        if not isinstance(first, dict) or first.get("type") != "auth" or not isinstance(first.get("key"), str):
            raise ApiError(401, "unauthorized", 'send {"type": "auth", "key": "<API key>"} first '
                           "(or an Authorization: Bearer header)", field="key")
        return await services.auth.authenticate(_TokenOnly(first["key"]))
    except (ApiError, ValueError, asyncio.TimeoutError) as exc:
        error = exc if isinstance(exc, ApiError) else ApiError(401, "unauthorized", "authentication required")
        await ws.send_json(error_message(error))
        await ws.close(POLICY_VIOLATION)
        return None


def _parse(raw: str) -> RouteBody:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ApiError(400, "invalid_request", "message is not valid JSON", field="body") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "message must be a JSON object", field="body")
    forbidden = next((name for name in FORBIDDEN_FIELDS if name in data), None)
    if forbidden:
        raise ApiError(400, "forbidden_field", f"{forbidden!r} cannot be set by clients", field=forbidden)
    if data.get("type") in ("route", "request"):
        data = {k: v for k, v in data.items() if k != "type"}
    try:
        return RouteBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = _field_of(("body", *first["loc"]))
        raise ApiError(422, "invalid_request", f"{field}: {first['msg']}", field=field) from None


async def _answer(services: Services, ws: WebSocket, who: Any, raw: str) -> None:
    """Stream one request's answer; any failure becomes an error message."""
    try:
        body = _parse(raw)
        await enforce(services.key_rate, who)
        await _stream(services, ws, who, body)
    except WebSocketDisconnect:
        raise
    except ProviderError as err:  # after the first chunk: no fallback any more
        await ws.send_json({"type": "error", "error": {"type": err.kind, "message": f"{err.platform}: {err.message}"}})
    except Exception as exc:  # noqa: BLE001 - every failure is answered, never a stack trace
        error = to_api_error(exc) or ApiError(500, "internal_error", "internal error (logged)")
        if error.status >= 500 and to_api_error(exc) is None:
            structlog.get_logger("switchboard.ws").error("unhandled_error", error_type=type(exc).__name__)
        await ws.send_json(error_message(error))


async def _stream(services: Services, ws: WebSocket, who: Any, body: RouteBody) -> None:
    gateway = services.gateway
    call = await prepare_route(services, body, who, PATH, request_log.new_request_id())
    request = call.request
    started = time.perf_counter()
    opened, events = await gateway.stream(call.plan, request, call.ctx, call.deadline, body.cache)
    async with contextlib.aclosing(events) as stream:  # closing records the ledger row
        async for event in stream:
            if event.kind == "delta":
                if event.text:
                    await ws.send_json({"type": "chunk", "text": event.text})
                continue
            usage = event.usage
            cost = 0.0 if opened.cache in ("hit", "semantic") or usage is None else (
                opened.model.cost_usd(usage.input_tokens, usage.output_tokens))
            await ws.send_json({
                "type": "done", "request_id": request.request_id, "platform": opened.platform,
                "model": opened.model.id, "chain": opened.chain,
                "usage": None if usage is None else {
                    "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                    "total_tokens": usage.total_tokens},
                "cost_usd": cost, "latency_ms": round((time.perf_counter() - started) * 1000.0, 3),
                "attempts": opened.attempts, "fallback_used": opened.fallback_used,
                "cache": opened.cache, "finish_reason": event.finish_reason or "stop",
            })
