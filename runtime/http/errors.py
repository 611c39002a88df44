"""Errors at the HTTP edge: every failure becomes `{"error": {type, message, field?}}` with the
right status. This is the one place where the error taxonomy meets HTTP."""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.core.ensemble import EnsembleFailed
from runtime.core.router import AllProvidersFailed, ClientRequestError
from runtime.http.schemas import FORBIDDEN_FIELDS
from runtime.core.routing import (
    BudgetTooLowError, CapabilityUnsupportedError, ContextTooLongForAllError, UnknownRouteError,
)


class ApiError(Exception):
    """An error meant for the client, with its HTTP status."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.field = field
        self.headers = headers or {}
        self.extra = extra or {}

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.field is not None:
            err["field"] = self.field
            err["param"] = self.field  # what OpenAI clients read
        err.update(self.extra)
        return {"error": err}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_all_failed(exc: AllProvidersFailed) -> ApiError:
    """429 if every platform is only rate-limited, else 503; Retry-After from the soonest."""
    kinds = {f.kind for f in exc.failures} - {"unsupported"}  # skipped before any call
    retry = [f.retry_after_s for f in exc.failures if f.retry_after_s is not None]
    headers = {"retry-after": str(max(1, math.ceil(min(retry))))} if retry else {}
    failures = [
        {"platform": f.platform, "model": f.model, "kind": f.kind, "message": f.message}
        for f in exc.failures
    ]
    if kinds and kinds <= {"rate_limited", "refused_rate_limited"}:
        return ApiError(429, "rate_limited", str(exc), headers=headers, extra={"failures": failures})
    return ApiError(503, "upstream_unavailable", str(exc), headers=headers, extra={"failures": failures})


def from_client_request(exc: ClientRequestError) -> ApiError:
    err = exc.error
    return ApiError(400, err.kind, f"{err.platform} refused the request: {err.message}")


def _field_of(loc: tuple[Any, ...]) -> str:
    """('body', 'messages', 0, 'role') → 'messages.0.role'; the first element is where."""
    parts = [str(p) for p in (loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc)]
    return ".".join(parts) if parts else "body"


def to_api_error(exc: BaseException) -> ApiError | None:
    """The client-facing error for a known failure (None: unexpected, a 500). Shared by the
    HTTP exception handlers and the WebSocket stream (runtime/http/ws.py)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AllProvidersFailed):
        return from_all_failed(exc)
    if isinstance(exc, ClientRequestError):
        return from_client_request(exc)
    if isinstance(exc, UnknownRouteError):
        return ApiError(404, "model_not_found", str(exc), field="model")
    if isinstance(exc, BudgetTooLowError):
        return ApiError(402, "budget_too_low", str(exc), field="max_cost_usd")
    if isinstance(exc, ContextTooLongForAllError):
        return ApiError(400, "context_too_long", str(exc), field="messages")
    if isinstance(exc, CapabilityUnsupportedError):
        return ApiError(400, "unsupported_parameter", str(exc), field=exc.parameter)
    if isinstance(exc, EnsembleFailed):
        members = [{"platform": m.platform, "model": m.model, "error": m.error} for m in exc.members]
        return ApiError(503, "ensemble_failed", str(exc), extra={"members": members})
    if isinstance(exc, StarletteHTTPException):
        return ApiError(exc.status_code, HTTP_ERROR_TYPES.get(exc.status_code, "http_error"), str(exc.detail),
                        headers=dict(exc.headers or {}))
    return None


HTTP_ERROR_TYPES = {
    400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
    422: "invalid_request", 429: "rate_limited", 503: "unavailable",
}


ERROR_SCHEMA: dict[str, Any] = {
    "title": "ErrorResponse",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "examples": ["invalid_request"]},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "the request field at fault, when one is"},
                "param": {"type": "string", "description": "same as field (what OpenAI clients read)"},
            },
            "additionalProperties": True,
        }
    },
}


def document_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema say what errors really look like: every operation's 422 and
    its `default` response are `ErrorResponse` (FastAPI would document `{"detail": ...}`)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("schemas", {})["ErrorResponse"] = ERROR_SCHEMA
        ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                responses = operation.setdefault("responses", {})
                if "422" in responses:
                    responses["422"] = {"description": "Invalid request", **ref}
                responses.setdefault("default", {"description": "Error", **ref})
        for unused in ("HTTPValidationError", "ValidationError"):
            schema["components"]["schemas"].pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    document_errors(app)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ("body",))))
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            field, message = "body", "request body is not valid JSON"
        if first.get("type") == "extra_forbidden" and field in FORBIDDEN_FIELDS:
            return ApiError(400, "forbidden_field", f"{field!r} cannot be set by clients", field=field).response()
        return ApiError(422, "invalid_request", f"{field}: {message}", field=field).response()

    async def _known(_: Request, exc: Exception) -> JSONResponse:
        error = to_api_error(exc)
        return (error or ApiError(500, "internal_error", "internal error (logged)")).response()

    for known in (ApiError, StarletteHTTPException, AllProvidersFailed, ClientRequestError,
                  UnknownRouteError, BudgetTooLowError, ContextTooLongForAllError, CapabilityUnsupportedError,
                  EnsembleFailed):
        app.add_exception_handler(known, _known)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger("switchboard").error("unhandled_error", error_type=type(exc).__name__)
        return ApiError(500, "internal_error", "internal error (logged)").response()
