"""The OpenAI-compatible API: any OpenAI client works by changing its base URL."""
from __future__ import annotations

from typing import Awaitable, Callable

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from runtime.core.gateway import CallContext
from runtime.core.routing import (
    constrain, estimate_request_size, plan_for_model_field, require_capabilities, virtual_models,
)
from runtime.http.auth import Principal
from runtime.http.openai_format import completion_object, sse_chunks, stream_headers, switchboard_headers
from runtime.http.openai_request import Limits, chat_request
from runtime.http.openai_schemas import ChatCompletionBody
from runtime.http.schemas import ModelCard, ModelList
from runtime.http.services import Services
from runtime.request_log import current_request_id


CHAT_PATH = "/v1/chat/completions"
ChatHandler = Callable[[ChatCompletionBody, Principal], Awaitable[Response]]


def chat_handler(services: Services) -> ChatHandler:
    """A validated chat-completions body and its caller → the answer (JSON or a stream). Served
    by the route below and by the edge's fast path (runtime/http/fast_chat.py)."""
    cfg, catalog, gateway = services.config, services.catalog, services.gateway
    limits = Limits(cfg.server.max_image_bytes, cfg.server.max_images, cfg.server.max_tool_schema_bytes)

    async def answer(body: ChatCompletionBody, who: Principal) -> Response:
        request = chat_request(body, default_max_tokens=cfg.server.default_max_tokens,
                               request_id=current_request_id(), limits=limits)
        max_tokens = request.max_tokens or cfg.server.default_max_tokens
        n_in = estimate_request_size(request)
        plan = await gateway.apply_budget(plan_for_model_field(cfg, catalog, body.model, n_in, max_tokens))
        plan = require_capabilities(constrain(plan, cfg, catalog, n_in, max_tokens, body.max_cost_usd), request)
        ctx = CallContext.of(who, endpoint=CHAT_PATH, use_case=plan.use_case)
        deadline = gateway.deadline(body.deadline_ms)
        if body.stream:
            opened, events = await gateway.stream(plan, request, ctx, deadline, body.cache)
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(
                sse_chunks(opened, events, request.request_id, include_usage),
                media_type="text/event-stream",
                headers=stream_headers(opened, request.request_id),
            )
        routed = await gateway.complete(plan, request, ctx, deadline, body.cache)
        return JSONResponse(
            completion_object(routed, request.request_id, body.model),
            headers=switchboard_headers(routed, request.request_id),
        )

    return answer


def router(services: Services) -> APIRouter:
    router = APIRouter()
    cfg, catalog = services.config, services.catalog
    principal = services.principal()
    answer = chat_handler(services)

    @router.post(CHAT_PATH, tags=["openai"])
    async def chat_completions(body: ChatCompletionBody, who: Principal = Depends(principal)) -> Response:
        return await answer(body, who)

    @router.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def list_models(who: Principal = Depends(principal)) -> ModelList:
        cards = [ModelCard(id=name, owned_by="switchboard") for name in virtual_models(cfg)]
        cards += [ModelCard(id=m.id, owned_by=m.platform) for m in catalog.live()]
        return ModelList(data=cards)

    return router
