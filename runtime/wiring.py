"""Assembling a Gateway inside a Ray process (a Serve replica or the Coordinator actor): the
named actors, the provider pool, the ledger client and the response cache."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import ray

from providers.actor import provider_actor_name
from providers.types import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    StreamCutError,
    UpstreamConnectionError,
)
from runtime.cache.keys import CachePolicy
from runtime.cache.response_cache import ResponseCache
from runtime.cache.stores import open_store
from runtime.config import Config
from runtime.cache.embed import BatchingEmbedder, Embedder
from runtime.core.gateway import Gateway
from runtime.finops.ledger_client import RayLedgerClient
from runtime.finops.ledger_store import FinalRow
from runtime.metrics import Metrics, NullMetrics
from runtime.core.router import Router
from runtime.cache.semantic import SemanticCache

LEDGER_ACTOR_NAME = "ledger"


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

    async def complete(
        self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        try:
            return await self._handles[platform].complete.remote(request, deadline, wait, retry)
        except ray.exceptions.RayActorError:
            return UpstreamConnectionError(
                f"provider actor for {platform} is restarting", platform=platform, model=request.model
            )


    async def stream(self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False):
        """Relay the actor's streaming generator (one object per event)."""
        refs = self._handles[platform].stream.options(num_returns="streaming").remote(request, deadline, wait)
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




@dataclass
class Handles:
    providers: dict[str, Any]
    ledger: Any


async def lookup_actors(config: Config, namespace: str) -> Handles:
    """The named provider and ledger actors, awaited ready."""
    providers = {p: ray.get_actor(provider_actor_name(p), namespace=namespace) for p in config.platforms}
    ledger = ray.get_actor(LEDGER_ACTOR_NAME, namespace=namespace)
    await asyncio.gather(*(h.__ray_ready__.remote() for h in (*providers.values(), ledger)))
    return Handles(providers, ledger)


async def build_gateway(config: Config, boot: BootInfo, handles: Handles, metrics: Metrics | None = None) -> Gateway:
    return Gateway(
        config=config,
        catalog=config.catalog(),
        router=Router(RayProviderPool(handles.providers)),
        ledger=RayLedgerClient(handles.ledger),  # budget-aware: pending rows before every call
        row_factory=FinalRow,
        metrics=metrics or NullMetrics(),
        cache=await open_response_cache(config, boot) if config.cache.enabled else None,
    )
