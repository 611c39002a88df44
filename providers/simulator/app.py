"""The Starlette app: each vendor's real paths, relative to its real base URL."""
from __future__ import annotations

from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from providers.simulator.admin import admin_routes
from providers.simulator.anthropic_proto import AnthropicDialect
from providers.simulator.core import Dialect, SimError, json_response
from providers.simulator.engine import Simulator, SimulatorConfig
from providers.simulator.gemini_proto import STREAM_ACTION, GeminiDialect, split_model_path
from providers.simulator.openai_flavors import GroqDialect, OpenRouterDialect
from providers.simulator.openai_proto import OpenAIDialect

Endpoint = Callable[[Request], Awaitable[Response]]
GEMINI_VERSIONS = ("v1beta", "v1")  # google-genai defaults to v1; the REST docs use v1beta

OPENAI, GROQ, OPENROUTER = OpenAIDialect(), GroqDialect(), OpenRouterDialect()
ANTHROPIC, GEMINI = AnthropicDialect(), GeminiDialect()


def v1_models_dialect(request: Request) -> Dialect:
    """`GET /v1/models` is shared by OpenAI, Anthropic and Gemini (API version v1): Gemini's
    clients send `x-goog-api-key` (or `?key=`), Anthropic's send `anthropic-version` (or
    `x-api-key` without a Bearer token); anything else is OpenAI."""
    h = request.headers
    if "x-goog-api-key" in h or "key" in request.query_params:
        return GEMINI
    if "anthropic-version" in h or ("x-api-key" in h and "authorization" not in h):
        return ANTHROPIC
    return OPENAI


def _chat(sim: Simulator, dialect: Dialect) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await sim.handle_chat(dialect, request)

    return endpoint


async def _list_models(sim: Simulator, dialect: Dialect, request: Request) -> Response:
    denied = sim.auth_error(dialect, request)
    return dialect.error(denied) if denied else dialect.models(sim.catalog, request)


def _models(sim: Simulator, dialect: Dialect) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await _list_models(sim, dialect, request)

    return endpoint


def _v1_models(sim: Simulator) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        return await _list_models(sim, v1_models_dialect(request), request)

    return endpoint


def _gemini_post(sim: Simulator) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        model, action = split_model_path(request.path_params["rest"])
        if action not in ("generateContent", STREAM_ACTION):
            return GEMINI.error(SimError("bad_request", 404, f"Method {action!r} is not found."))
        return await sim.handle_chat(GEMINI, request, model)

    return endpoint


def _retrieve(sim: Simulator, pick: Callable[[Request], Dialect]) -> Endpoint:
    """`GET <base>/models/{model}`: one model, in the chosen dialect's shape."""

    async def endpoint(request: Request) -> Response:
        dialect = pick(request)
        denied = sim.auth_error(dialect, request)
        if denied is not None:
            return dialect.error(denied)
        try:
            spec = sim.lookup(dialect.platform, request.path_params["rest"].removeprefix("models/"))
        except SimError as err:
            return dialect.error(err)
        return json_response(200, dialect.model_entry(spec))

    return endpoint


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    """The simulator as an ASGI app. `app.state.simulator` is its `Simulator` (for tests)."""
    sim = Simulator(config or SimulatorConfig())
    routes = [
        Route("/v1/chat/completions", _chat(sim, OPENAI), methods=["POST"]),
        Route("/v1/messages", _chat(sim, ANTHROPIC), methods=["POST"]),
        Route("/v1/models", _v1_models(sim), methods=["GET"]),
        Route("/openai/v1/chat/completions", _chat(sim, GROQ), methods=["POST"]),
        Route("/openai/v1/models", _models(sim, GROQ), methods=["GET"]),
        Route("/api/v1/chat/completions", _chat(sim, OPENROUTER), methods=["POST"]),
        Route("/api/v1/models", _models(sim, OPENROUTER), methods=["GET"]),
        Route("/v1/models/{rest:path}", _retrieve(sim, v1_models_dialect), methods=["GET"]),
        Route("/openai/v1/models/{rest:path}", _retrieve(sim, lambda r: GROQ), methods=["GET"]),
        Route("/api/v1/models/{rest:path}", _retrieve(sim, lambda r: OPENROUTER), methods=["GET"]),
        Route("/v1beta/models", _models(sim, GEMINI), methods=["GET"]),
        Route("/v1beta/models/{rest:path}", _retrieve(sim, lambda r: GEMINI), methods=["GET"]),
        *(Route(f"/{v}/models/{{rest:path}}", _gemini_post(sim), methods=["POST"]) for v in GEMINI_VERSIONS),
        *admin_routes(sim),
    ]
    app = Starlette(routes=routes)
    app.state.simulator = sim
    return app
