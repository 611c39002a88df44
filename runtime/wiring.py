"""Assembling a Gateway inside a Ray process (a Serve replica or the Coordinator actor): the
named actors, the provider pool, the ledger client and the response cache."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from providers.actor import provider_actor_name
from providers.clock import SYSTEM_CLOCK
from runtime.cache.keys import CachePolicy
from runtime.cache.response_cache import ResponseCache
from runtime.cache.stores import open_store
from runtime.config import Config
from runtime.cache.embed import BatchingEmbedder, Embedder
from runtime.core.gateway import Gateway
from runtime.finops.ledger_client import RayLedgerClient
from runtime.finops.ledger_rows import FinalRow
from runtime.metrics import Metrics, NullMetrics
from runtime.core.router import Router
from runtime.cache.semantic import SemanticCache
from runtime.finops.allowances import AllowanceBook
from runtime.finops.journal import Journal
from providers.leases import holder_name
from runtime.provider_pool import LeasedProviderPool, RayProviderPool

__all__ = ["BootInfo", "Handles", "LeasedProviderPool", "RayProviderPool", "build_gateway", "lookup_actors",
           "open_ledger_client", "open_provider_pool", "open_response_cache"]

LEDGER_ACTOR_NAME = "ledger"
JOURNAL_DIR = "journal"
#: rows nobody awaits reach the ledger in batches at most this much later (a few calls a second)
LEDGER_LINGER_S = 0.25


@dataclass(frozen=True)
class BootInfo:
    """What the driver tells each replica (no secrets: the admin key only as a digest)."""

    namespace: str
    config_path: str | None
    admin_digest: str
    simulated: tuple[str, ...]
    simulator_url: str | None
    redis_url: str | None = None
    data_dir: str | None = None  # where this node keeps the replicas' ledger journals


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


async def open_provider_pool(config: Config, handles: Handles) -> LeasedProviderPool | RayProviderPool:
    """Calls from this process under leases (the default), or through the actors."""
    if not config.protection.leases:
        return RayProviderPool(handles.providers)
    settings = {p: config.platform_settings(p) for p in config.platforms}
    return await LeasedProviderPool.open(settings, handles.providers)


async def open_ledger_client(config: Config, boot: BootInfo, handles: Handles) -> RayLedgerClient:
    """Budget-aware: a pending row before every call, journaled here (keys with budgets drawn
    from this replica's spending allowances). Dead replicas' journals are adopted before this
    one serves."""
    journal = None
    if config.server.ledger_journal and boot.data_dir:
        journal = Journal(Path(boot.data_dir) / JOURNAL_DIR, holder_name())
    client = RayLedgerClient(handles.ledger, journal=journal, linger_s=LEDGER_LINGER_S, allowances=AllowanceBook(),
                             sleep=SYSTEM_CLOCK.sleep, monotonic=SYSTEM_CLOCK.monotonic, wall=SYSTEM_CLOCK.time)
    await client.tend_journal()
    client.start_tending(SYSTEM_CLOCK.sleep)
    return client


async def build_gateway(config: Config, boot: BootInfo, handles: Handles, metrics: Metrics | None = None) -> Gateway:
    return Gateway(
        config=config,
        catalog=config.catalog(),
        router=Router(await open_provider_pool(config, handles)),
        ledger=await open_ledger_client(config, boot, handles),
        row_factory=FinalRow,
        metrics=metrics or NullMetrics(),
        cache=await open_response_cache(config, boot) if config.cache.enabled else None,
    )
