"""The OpenAI-compatible API: any OpenAI client works by changing its base URL."""
from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from providers.types import ChatRequest
from runtime.http.auth import Principal
from runtime.http.errors import ApiError
from runtime.core.gateway import CallContext
from runtime.http.openai_format import (
    completion_object, messages_from_body, sse_chunks, stream_headers, switchboard_headers,
)
from runtime.request_log import current_request_id
from runtime.core.routing import constrain, plan_for_model_field, virtual_models
from runtime.http.schemas import ChatCompletionBody, ModelCard, ModelList
from runtime.http.services import Services
from runtime.core.routing import estimate_tokens


def router(services: Services) -> APIRouter:
    router = APIRouter()
    cfg, catalog, gateway = services.config, services.catalog, services.gateway
    principal = services.principal()

    @router.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(body: ChatCompletionBody, who: Principal = Depends(principal)):
        forbidden = body.forbidden_field()
        if forbidden:
            raise ApiError(400, "forbidden_field", f"{forbidden!r} cannot be set by clients", field=forbidden)
        messages = messages_from_body(body)
        max_tokens = body.output_limit or cfg.server.default_max_tokens
        request = ChatRequest(
            messages=messages,
            max_tokens=max_tokens,
            temperature=body.temperature,
            top_p=body.top_p,
            stop=body.stops,
            response_format=body.response_format.type if body.response_format else "text",
            request_id=current_request_id(),
        )
        chars = sum(len(m.content) for m in messages)
        n_in = estimate_tokens(chars)
        plan = await gateway.apply_budget(plan_for_model_field(cfg, catalog, body.model, n_in, max_tokens))
        plan = constrain(plan, cfg, catalog, n_in, max_tokens, body.max_cost_usd)
        ctx = CallContext.of(who, endpoint="/v1/chat/completions", use_case=plan.use_case)
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

    @router.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def list_models(who: Principal = Depends(principal)) -> ModelList:
        cards = [ModelCard(id=name, owned_by="switchboard") for name in virtual_models(cfg)]
        cards += [ModelCard(id=m.id, owned_by=m.platform) for m in catalog.live()]
        return ModelList(data=cards)

    return router
