"""`POST /v1/chat/completions` without FastAPI's per-request machinery (matching the path against
every route, solving dependencies, the exit stacks and wrappers around the endpoint): the hot
path's share of that machinery was about a quarter of the replica's CPU (bench/NOTES.md).

The answer is the route's own: the same body model, the same handler
(`routes/openai_compat.chat_handler`), the same errors (the app's own exception handlers), in
the same order as FastAPI (a body that is not JSON, then the caller, then the fields). What
this does not take - a body that is empty, not `application/json` or not valid JSON - goes to
the FastAPI route with the body handed on unread, so its answer is FastAPI's. The route also
keeps documenting the endpoint in OpenAPI.

Installed as the innermost edge middleware (runtime/http/api.py): the request log, the body
limit and Idempotency-Key apply as to every route.
"""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Mapping

from pydantic import ValidationError
from fastapi.exceptions import RequestValidationError
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from runtime.http.asgi import ASGIApp, Receive, Scope, Send, header, read_body, replaying
from runtime.http.auth import Principal
from runtime.http.middleware import ENDPOINT_KEY
from runtime.http.openai_schemas import ChatCompletionBody
from runtime.http.routes.openai_compat import CHAT_PATH, ChatHandler

Authenticate = Callable[[Request], Awaitable[Principal]]
ExceptionHandler = Callable[[Request, Exception], Any]


class ChatFastPath:
    def __init__(self, app: ASGIApp, *, answer: ChatHandler, authenticate: Authenticate,
                 exception_handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.app = app
        self.answer = answer
        self.authenticate = authenticate
        self.exception_handlers = exception_handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != CHAT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the client left while sending
        data = json_object(header(scope, b"content-type"), body)
        if data is None:
            await self.app(scope, replaying(body, receive), send)
            return
        scope[ENDPOINT_KEY] = CHAT_PATH
        request = Request(scope, receive)
        try:
            who = await self.authenticate(request)
            response = await self.answer(validated(data), who)
        except Exception as exc:
            handler = handler_for(self.exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc) if is_async_callable(handler) else \
                await run_in_threadpool(handler, request, exc)
        await response(scope, receive, send)


def json_object(content_type: str | None, body: bytes) -> Any | None:
    """The decoded body when FastAPI would decode it the same way and succeed; None for what
    the route should see (no body, another media type, JSON that does not parse)."""
    if not body or content_type is None:
        return None
    if content_type.partition(";")[0].strip().lower() != "application/json":
        return None
    try:
        return json.loads(body)
    except ValueError:  # JSONDecodeError, and bytes that are not UTF-8/16/32
        return None


def validated(data: Any) -> ChatCompletionBody:
    """The body model, with FastAPI's error locations (`("body", ...)`) on failure."""
    try:
        return ChatCompletionBody.model_validate(data, from_attributes=True)  # as FastAPI validates
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()], body=data) from None


def handler_for(handlers: Mapping[Any, ExceptionHandler], exc: Exception) -> ExceptionHandler | None:
    """The app's handler for `exc`, the most specific class first (as Starlette looks it up)."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
