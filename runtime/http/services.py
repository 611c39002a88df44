"""What the HTTP routers are given: configuration and the per-replica services. Each area's
routes live in their own module (`runtime/routes_*.py`, `runtime/agent_routes.py`) as an APIRouter built
from these services; `runtime/http/api.py` assembles them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from fastapi import Request

from providers.catalog import Catalog
from runtime.http.auth import Authenticator, Principal
from runtime.config import Config
from runtime.core.gateway import Gateway
from runtime.http.key_rate import enforce as enforce_key_rate
from runtime.metrics import Metrics, NullMetrics
from runtime.request_log import note
from runtime.http.schemas import Health


@dataclass
class Services:
    config: Config
    catalog: Catalog
    gateway: Gateway
    auth: Authenticator
    health: Callable[[], Awaitable[Health]]
    #: no longer used (the reports are served from `ledger` by runtime/http/routes/finops.py); kept
    #: so that positional construction keeps its meaning
    costs_summary: Callable[[str | None], Awaitable[Any]] | None = None
    metrics: Metrics = field(default_factory=NullMetrics)
    #: the ledger's async methods (runtime.ledger_client.RayLedgerClient, or a LedgerActor
    #: instance in tests), for the FinOps routes
    ledger: Any = None
    #: the Coordinator actor (or a stand-in), for the agent pipelines
    coordinator: Any = None
    #: platform -> ProviderActor handle, for GET /api/ai/providers
    providers: Any = None
    #: shared Idempotency-Key store (runtime/http/idempotency/middleware.py); None turns the feature off
    idempotency: Any = None
    #: shared per-key requests/minute limiter (runtime/http/key_rate.py); None = no per-key limits
    key_rate: Any = None

    def principal(self) -> Callable[[Request], Awaitable[Principal]]:
        """A FastAPI dependency that authenticates the caller."""

        async def dependency(request: Request) -> Principal:
            who = await self.auth.authenticate(request)
            note(key_id=who.key_id, user_id=who.user_id)
            await enforce_key_rate(self.key_rate, who)
            return who

        return dependency
