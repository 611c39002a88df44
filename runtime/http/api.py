"""The HTTP API (FastAPI), built per replica from its services. No Ray imports here: the Serve
deployment (runtime/deployment.py) hands this app its services and the routers of the layers
above the edge (the agent pipelines'); tests can too."""
from __future__ import annotations

from typing import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse

from runtime.http import ws
from runtime.http.routes import ai as routes_ai, finops as routes_finops
from runtime.http.routes import openai_compat as routes_openai, providers as routes_providers
from runtime.http.errors import install_error_handlers
from runtime.http.fast_chat import ChatFastPath
from runtime.http.idempotency.middleware import IdempotencyMiddleware
from runtime.http.middleware import BodyLimitMiddleware, RequestLogMiddleware
from runtime.http.schemas import Health
from runtime.http.services import Services

__all__ = ["Services", "create_api"]


def create_api(services: Services, extra_routers: Iterable[APIRouter] = ()) -> FastAPI:
    """The edge's routes, plus `extra_routers` (mounted after the providers' routes)."""
    app = FastAPI(
        title="Switchboard",
        version="0.1.0",
        description="Multi-LLM orchestration gateway: routing, fallback, limits, FinOps.",
    )
    install_error_handlers(app)

    install_edge_middleware(app, services)

    @app.get("/healthz", response_model=Health, tags=["ops"])
    async def healthz() -> JSONResponse:
        health = await services.health()
        return JSONResponse(health.model_dump(), status_code=200 if health.status == "ok" else 503)

    app.include_router(routes_ai.router(services))
    app.include_router(routes_openai.router(services))
    app.include_router(routes_providers.router(services))
    for extra in extra_routers:
        app.include_router(extra)
    app.include_router(routes_finops.router(services))
    routes_finops.install_error_handlers(app)
    app.include_router(ws.router(services))
    return app


def install_edge_middleware(app: FastAPI, services: Services) -> None:
    """Outermost first: request log → body limit → idempotency → the chat fast path
    (runtime/http/middleware.py). Added innermost first."""
    server = services.config.server
    app.add_middleware(
        ChatFastPath, answer=routes_openai.chat_handler(services), authenticate=services.principal(),
        exception_handlers=app.exception_handlers,
    )
    if services.idempotency is not None:
        app.add_middleware(
            IdempotencyMiddleware, store=services.idempotency, ttl_s=server.idempotency_ttl_s,
            in_flight_ttl_s=server.request_timeout_s + 30.0,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=server.max_body_bytes)
    app.add_middleware(RequestLogMiddleware, metrics=services.metrics)
