"""Model-answering routes: routing, the OpenAI-compatible API, ensembles, cache stats."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, StreamingResponse

from providers.types import ChatRequest
from runtime.auth import Principal
from runtime.ensemble import run_ensemble
from runtime.errors import ApiError
from runtime.gateway import CallContext
from runtime.request_log import current_request_id
from runtime.openai_format import (
    completion_object,
    messages_from_body,
    sse_chunks,
    stream_headers,
    switchboard_headers,
)
from runtime.routing import constrain, plan_for_model_field, virtual_models
from runtime.schemas import (
    ChatCompletionBody,
    EnsembleBody,
    EnsembleMemberOut,
    EnsembleOut,
    EnsembleSynthesisOut,
    ModelCard,
    ModelList,
    RouteBody,
    RouteResult,
    UsageOut,
)
from runtime.route_call import prepare_route
from runtime.services import Services, estimate_tokens


def router(services: Services) -> APIRouter:
    router = APIRouter()
    cfg, catalog, gateway = services.config, services.catalog, services.gateway
    principal = services.principal()

    @router.post("/api/ai/route", response_model=RouteResult, tags=["routing"])
    async def route(body: RouteBody, who: Principal = Depends(principal)) -> JSONResponse:
        call = await prepare_route(services, body, who, "/api/ai/route", current_request_id())
        request = call.request
        routed = await gateway.complete(call.plan, request, call.ctx, call.deadline, body.cache)
        resp = routed.response
        result = RouteResult(
            request_id=request.request_id,
            text=resp.text,
            platform=resp.platform,
            model=resp.model,
            chain=routed.chain,
            usage=UsageOut(
                input_tokens=resp.usage.input_tokens,
                output_tokens=resp.usage.output_tokens,
                total_tokens=resp.usage.total_tokens,
            ),
            cost_usd=routed.cost_usd,
            latency_ms=round(routed.latency_ms, 3),
            attempts=routed.attempts,
            fallback_used=routed.fallback_used,
            finish_reason=resp.finish_reason,
            cache=routed.cache,
        )
        return JSONResponse(result.model_dump(), headers=switchboard_headers(routed, request.request_id))

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

    @router.post("/api/ai/ensemble", response_model=EnsembleOut, tags=["routing"])
    async def ensemble(body: EnsembleBody, who: Principal = Depends(principal)) -> EnsembleOut:
        members = body.models or cfg.ensemble.default_members
        if len(members) > cfg.ensemble.max_members:
            raise ApiError(422, "invalid_request", f"at most {cfg.ensemble.max_members} members", field="models")
        ctx = CallContext.of(who, endpoint="/api/ai/ensemble")
        result = await run_ensemble(
            gateway, body.query, members, body.system_prompt, ctx,
            gateway.deadline(body.deadline_ms), body.max_tokens or cfg.server.default_max_tokens,
        )
        s = result.synthesis
        return EnsembleOut(
            answer=result.answer,
            members=[EnsembleMemberOut(
                platform=m.platform, model=m.model, ok=m.ok, text=m.text, error=m.error,
                cost_usd=m.cost_usd, latency_ms=round(m.latency_ms, 3)) for m in result.members],
            synthesis=EnsembleSynthesisOut(
                platform=s.response.platform, model=s.response.model, chain=s.chain, cost_usd=s.cost_usd,
                latency_ms=round(s.latency_ms, 3), fallback_used=s.fallback_used),
            total_cost_usd=result.total_cost_usd,
            latency_ms=round(result.latency_ms, 3),
        )

    @router.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def list_models(who: Principal = Depends(principal)) -> ModelList:
        cards = [ModelCard(id=name, owned_by="switchboard") for name in virtual_models(cfg)]
        cards += [ModelCard(id=m.id, owned_by=m.platform) for m in catalog.live()]
        return ModelList(data=cards)

    @router.get("/api/ai/cache/stats", tags=["cache"])
    async def cache_stats(who: Principal = Depends(principal)) -> dict[str, Any]:
        if gateway.cache is None:
            return {"enabled": False}
        return {"enabled": True, **(await gateway.cache.stats()).as_dict()}

    return router
