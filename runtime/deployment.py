"""The Serve ingress deployment: one replica = one process with its own FastAPI app, looking up
the named actors (providers, ledger) once at start."""
from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import ray
from ray import serve

from providers.actor import provider_actor_name
from providers.types import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    StreamCutError,
    UpstreamConnectionError,
)
from runtime.api import Services, create_api
from runtime.auth import Authenticator
from runtime.cache import CachePolicy, ResponseCache
from runtime.cache_backends import open_store
from runtime.config import Config, load_config
from runtime.embed import BatchingEmbedder, Embedder
from runtime.metrics import GatewayMetrics
from runtime.semantic import SemanticCache
from runtime.gateway import Gateway
from runtime.ledger_store import FinalRow
from runtime.router import Router
from runtime.schemas import Health

LEDGER_ACTOR_NAME = "ledger"
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class BootInfo:
    """What the driver tells each replica (no secrets: the admin key only as a digest)."""

    namespace: str
    config_path: str | None
    admin_digest: str
    simulated: tuple[str, ...]
    simulator_url: str | None
    redis_url: str | None = None


class RayProviderPool:
    def __init__(self, handles: dict[str, Any]) -> None:
        self._handles = handles

    async def complete(self, platform: str, request: ChatRequest, deadline: float) -> ChatResponse | ProviderError:
        try:
            return await self._handles[platform].complete.remote(request, deadline)
        except ray.exceptions.RayActorError:
            return UpstreamConnectionError(
                f"provider actor for {platform} is restarting", platform=platform, model=request.model
            )


    async def stream(self, platform: str, request: ChatRequest, deadline: float):
        """Relay the actor's streaming generator (one object per event)."""
        refs = self._handles[platform].stream.options(num_returns="streaming").remote(request, deadline)
        finished = False
        try:
            async for ref in refs:
                yield await ref
            finished = True
        except ray.exceptions.RayActorError:
            yield StreamCutError(f"provider actor for {platform} died", platform=platform, model=request.model)
            finished = True
        finally:
            if not finished:  # the client went away: stop the upstream call too
                ray.cancel(refs)


class RayLedgerClient:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def record(self, row: FinalRow) -> None:
        await self._handle.record.remote(row)


async def open_response_cache(config: Config, boot: BootInfo) -> ResponseCache:
    """The replica's cache: an LRU front over the shared store (the Cache actor, or Redis when
    REDIS_URL is set), with the semantic layer ready for requests that opt in (the embedding
    model loads on first use)."""
    c = config.cache
    store = await open_store(redis_url=boot.redis_url, ray_namespace=boot.namespace, redis_namespace=c.redis_namespace)
    semantic = SemanticCache(store, BatchingEmbedder(Embedder()), threshold=c.semantic_threshold)
    await semantic.start()
    policy = CachePolicy(ttl_s=c.ttl_s, max_temperature=c.max_temperature, shared=c.shared,
                         semantic_use_cases=frozenset(c.semantic_use_cases))
    return ResponseCache(store, policy=policy, semantic=semantic, front_entries=c.front_entries)


@serve.deployment(
    name="gateway",
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=256,
    graceful_shutdown_timeout_s=5,
    graceful_shutdown_wait_loop_s=0.5,
)
@serve.ingress()
class GatewayDeployment:
    async def __init__(self, boot: BootInfo) -> None:
        self.boot = boot
        self.config = load_config(boot.config_path)
        self.catalog = self.config.catalog()
        ns = boot.namespace
        self.providers = {p: ray.get_actor(provider_actor_name(p), namespace=ns) for p in self.config.platforms}
        self.ledger = ray.get_actor(LEDGER_ACTOR_NAME, namespace=ns)
        await asyncio.gather(*(h.__ray_ready__.remote() for h in (*self.providers.values(), self.ledger)))
        self.metrics = GatewayMetrics()
        self.gateway = Gateway(
            config=self.config,
            catalog=self.catalog,
            router=Router(RayProviderPool(self.providers)),
            ledger=RayLedgerClient(self.ledger),
            row_factory=FinalRow,
            metrics=self.metrics,
            cache=await open_response_cache(self.config, boot) if self.config.cache.enabled else None,
        )

    def __serve_build_asgi_app__(self):
        return create_api(
            Services(
                config=self.config,
                catalog=self.catalog,
                gateway=self.gateway,
                auth=Authenticator(self.boot.admin_digest),
                health=self.health,
                costs_summary=self.costs_summary,
                metrics=self.metrics,
            )
        )

    async def health(self) -> Health:
        names = {f"provider:{p}": h for p, h in self.providers.items()} | {"ledger": self.ledger}

        async def ping(handle: Any) -> bool:
            try:
                await asyncio.wait_for(handle.__ray_ready__.remote(), HEALTH_TIMEOUT_S)
                return True
            except Exception:
                return False

        results = await asyncio.gather(*(ping(h) for h in names.values()))
        actors = dict(zip(names, ["ok" if r else "unreachable" for r in results]))
        warning = None
        if self.boot.simulated:
            warning = (
                f"SIMULATED UPSTREAM: {', '.join(self.boot.simulated)} answered by the local "
                f"simulator at {self.boot.simulator_url} (no API key set)"
            )
        return Health(
            status="ok" if all(results) else "starting",
            simulated_platforms=list(self.boot.simulated),
            simulator_url=self.boot.simulator_url,
            warning=warning,
            actors=actors,
        )

    async def costs_summary(self, user_id: str | None) -> dict[str, Any]:
        return dataclasses.asdict(await self.ledger.summary.remote(user_id))
