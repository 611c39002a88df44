"""Errors at the HTTP edge: every failure becomes `{"error": {type, message, field?}}` with the
right status. This is the one place where the error taxonomy meets HTTP."""
from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.ensemble import EnsembleFailed
from runtime.router import AllProvidersFailed, ClientRequestError
from runtime.routing import BudgetTooLowError, ContextTooLongForAllError, UnknownRouteError


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
    kinds = {f.kind for f in exc.failures}
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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": ("body",), "msg": "invalid request"}
        field = _field_of(tuple(first.get("loc", ("body",))))
        message = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            field, message = "body", "request body is not valid JSON"
        return ApiError(422, "invalid_request", f"{field}: {message}", field=field).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
        return ApiError(exc.status_code, kind.get(exc.status_code, "http_error"), str(exc.detail)).response()

    @app.exception_handler(AllProvidersFailed)
    async def _all_failed(_: Request, exc: AllProvidersFailed) -> JSONResponse:
        return from_all_failed(exc).response()

    @app.exception_handler(ClientRequestError)
    async def _client_request(_: Request, exc: ClientRequestError) -> JSONResponse:
        return from_client_request(exc).response()

    @app.exception_handler(UnknownRouteError)
    async def _unknown_route(_: Request, exc: UnknownRouteError) -> JSONResponse:
        return ApiError(404, "model_not_found", str(exc), field="model").response()

    @app.exception_handler(BudgetTooLowError)
    async def _budget(_: Request, exc: BudgetTooLowError) -> JSONResponse:
        return ApiError(402, "budget_too_low", str(exc), field="max_cost_usd").response()

    @app.exception_handler(ContextTooLongForAllError)
    async def _context(_: Request, exc: ContextTooLongForAllError) -> JSONResponse:
        return ApiError(400, "context_too_long", str(exc), field="messages").response()

    @app.exception_handler(EnsembleFailed)
    async def _ensemble(_: Request, exc: EnsembleFailed) -> JSONResponse:
        members = [{"platform": m.platform, "model": m.model, "error": m.error} for m in exc.members]
        return ApiError(503, "ensemble_failed", str(exc), extra={"members": members}).response()

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger("switchboard").error("unhandled_error", error_type=type(exc).__name__)
        return ApiError(500, "internal_error", "internal error (logged)").response()
