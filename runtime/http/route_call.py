"""From a `RouteBody` (POST /api/ai/route, the WebSocket stream) to what the gateway needs: the
request, its route plan (budget and context constraints applied) and the caller's context."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers.types import ChatRequest, Message
from runtime.core.gateway import CallContext
from runtime.core.routing import RoutePlan, constrain, plan_for_use_case
from runtime.http.schemas import RouteBody
from runtime.http.services import Services
from runtime.core.routing import estimate_tokens


@dataclass(frozen=True, slots=True)
class RouteCall:
    request: ChatRequest
    plan: RoutePlan
    ctx: CallContext
    deadline: float


async def prepare_route(services: Services, body: RouteBody, who: Any, endpoint: str, request_id: str) -> RouteCall:
    cfg, catalog, gateway = services.config, services.catalog, services.gateway
    use_case = body.use_case or cfg.server.default_use_case
    priority = body.priority or cfg.server.default_priority
    max_tokens = body.max_tokens or cfg.server.default_max_tokens
    system = (Message("system", body.system_prompt),) if body.system_prompt else ()
    request = ChatRequest(messages=system + (Message("user", body.query),), max_tokens=max_tokens,
                          temperature=body.temperature, request_id=request_id)
    n_in = estimate_tokens(len(body.query) + len(body.system_prompt or ""))
    plan = await gateway.apply_budget(plan_for_use_case(cfg, catalog, use_case, priority, n_in, max_tokens))
    plan = constrain(plan, cfg, catalog, n_in, max_tokens, body.max_cost_usd)
    ctx = CallContext.of(who, endpoint=endpoint, use_case=use_case)
    return RouteCall(request, plan, ctx, gateway.deadline(body.deadline_ms))
