"""Switchboard's own model-answering routes: routing, ensembles, cache stats (the
OpenAI-compatible API is in runtime/http/routes/openai_compat.py)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from runtime.http.auth import Principal
from runtime.core.ensemble import run_ensemble
from runtime.http.errors import ApiError
from runtime.core.gateway import CallContext
from runtime.http.openai_format import switchboard_headers
from runtime.request_log import current_request_id
from runtime.http.route_call import prepare_route
from runtime.http.schemas import (
    EnsembleBody, EnsembleMemberOut, EnsembleOut, EnsembleSynthesisOut, RouteBody, RouteResult, UsageOut,
)
from runtime.http.services import Services


def router(services: Services) -> APIRouter:
    router = APIRouter()
    cfg, gateway = services.config, services.gateway
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

    @router.get("/api/ai/cache/stats", tags=["cache"])
    async def cache_stats(who: Principal = Depends(principal)) -> dict[str, Any]:
        if gateway.cache is None:
            return {"enabled": False}
        return {"enabled": True, **(await gateway.cache.stats()).as_dict()}

    return router
