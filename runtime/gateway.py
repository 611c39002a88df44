"""The ingress-side request flow: plan → route with fallback → record in the ledger.

Shared by every endpoint that answers with a model (route, chat completions, pipelines), so
each call path records the same way.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from providers.catalog import Catalog
from providers.types import ChatRequest
from runtime.config import Config
from runtime.router import AllProvidersFailed, ClientRequestError, RoutedResponse, Router
from runtime.routing import RoutePlan


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and why: carried into the ledger row."""

    user_id: str
    key_id: str | None = None
    agent_id: str = "orchestrator"
    conversation_id: str | None = None
    endpoint: str = "/api/ai/route"
    use_case: str | None = None


class LedgerClient(Protocol):
    async def record(self, row: Any) -> None: ...


@dataclass
class Gateway:
    config: Config
    catalog: Catalog
    router: Router
    ledger: LedgerClient
    row_factory: Any  # runtime.ledger_store.FinalRow

    def deadline(self, deadline_ms: int | None = None) -> float:
        timeout_s = self.config.server.request_timeout_s
        if deadline_ms is not None:
            timeout_s = min(timeout_s, deadline_ms / 1000.0)
        return time.time() + timeout_s

    async def complete(
        self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, deadline: float
    ) -> RoutedResponse:
        try:
            routed = await self.router.execute(plan, request, deadline)
        except (AllProvidersFailed, ClientRequestError) as exc:
            await self.ledger.record(self._failure_row(plan, request, ctx, exc))
            raise
        await self.ledger.record(self._success_row(plan, request, ctx, routed))
        return routed

    def _success_row(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, r: RoutedResponse):
        usage = r.response.usage
        return self.row_factory(
            request_id=request.request_id,
            user_id=ctx.user_id,
            key_id=ctx.key_id,
            agent_id=ctx.agent_id,
            conversation_id=ctx.conversation_id,
            endpoint=ctx.endpoint,
            use_case=ctx.use_case or plan.use_case,
            chain=plan.chain,
            platform=r.response.platform,
            model=r.response.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=r.cost_usd,
            status="ok",
            fallback_used=r.fallback_used,
            attempts=r.attempts,
            latency_ms=r.latency_ms,
            created_at=time.time(),
        )

    def _failure_row(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, exc: Exception):
        failures = getattr(exc, "failures", ()) or ()
        last = failures[-1] if failures else None
        error = getattr(exc, "error", None)
        return self.row_factory(
            request_id=request.request_id,
            user_id=ctx.user_id,
            key_id=ctx.key_id,
            agent_id=ctx.agent_id,
            conversation_id=ctx.conversation_id,
            endpoint=ctx.endpoint,
            use_case=ctx.use_case or plan.use_case,
            chain=plan.chain,
            platform=(last.platform if last else getattr(error, "platform", "")) or "",
            model=(last.model if last else getattr(error, "model", "")) or "",
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            status="error",
            fallback_used=len(failures) > 1,
            attempts=max(1, len(failures)),
            latency_ms=0.0,
            error_kind=(last.kind if last else getattr(error, "kind", "error")),
            created_at=time.time(),
        )
