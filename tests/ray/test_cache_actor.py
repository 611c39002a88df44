"""The default shared store: one named CacheActor that every replica reaches via ActorStore."""
from __future__ import annotations

import asyncio
import os
import uuid

import numpy as np
import pytest

from providers.types import ChatRequest, Message, Usage
from runtime.cache.response_cache import CacheLookup, ResponseCache
from runtime.cache.entries import CachedAnswer
from runtime.cache.stores import cache_actor_options, open_store
from runtime.cache.semantic import SemanticCache

pytestmark = pytest.mark.ray


def request(text: str) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), temperature=0.0, max_tokens=64)


def answer(cost: float) -> CachedAnswer:
    return CachedAnswer("ok", "stop", Usage(5, 1), "groq", "llama-3.1-8b-instant", cost, 0.0)


@pytest.fixture
async def actor_store(ray_cluster):
    ray = ray_cluster
    namespace = ray.get_runtime_context().namespace
    name = f"switchboard:cache:test-{uuid.uuid4().hex[:8]}"
    store = await open_store(redis_url=None, ray_namespace=namespace, actor_name=name)
    store.name = name
    yield store
    ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)


def test_actor_options_survive_failures_and_reserve_no_cpu():
    options = cache_actor_options("ns")
    assert options["max_restarts"] == -1 and options["num_cpus"] == 0
    assert options["name"] == "switchboard:cache" and options["get_if_exists"] is True
    assert options["max_task_retries"] == 0


async def test_replicas_share_entries_and_stats_through_the_actor(actor_store):
    replica_a, replica_b = ResponseCache(actor_store), ResponseCache(actor_store)
    miss = await replica_a.lookup(request("hello"), route="chain:bulk", tenant="t")
    await replica_a.store(miss, answer(0.003))
    hit = await replica_b.lookup(request("hello"), route="chain:bulk", tenant="t")
    assert hit.hit and hit.source == "store" and hit.answer.cost_usd == 0.003
    await replica_a.flush_stats()
    stats = await replica_b.stats()
    assert (stats.hits, stats.misses, stats.entries) == (1, 1, 1)
    assert stats.saved_usd == pytest.approx(0.003)


async def test_open_store_finds_the_existing_actor(ray_cluster, actor_store):
    await actor_store.set("k", answer(0.1), 60)
    namespace = ray_cluster.get_runtime_context().namespace
    again = await open_store(redis_url=None, ray_namespace=namespace, actor_name=actor_store.name)
    assert await again.get("k") == answer(0.1)


async def test_vectors_cross_the_actor_boundary(actor_store):
    class FixedEmbedder:
        async def embed_one(self, text: str) -> np.ndarray:
            v = np.ones(384, dtype=np.float32)
            return v / np.linalg.norm(v)

        def fits(self, text: str) -> bool:
            return True

    writer = SemanticCache(actor_store, FixedEmbedder())
    probe = await writer.probe(request("q"), route="r", tenant=None)
    await writer.add(probe, "v1:abc", ttl_s=60)
    reader = SemanticCache(actor_store, FixedEmbedder())
    assert await reader.start() == 1
    found = await reader.probe(request("q2"), route="r", tenant=None)
    assert found.match[0] == "v1:abc" and found.match[1] == pytest.approx(1.0)


async def test_a_killed_actor_restarts_empty_and_keeps_serving(ray_cluster, actor_store):
    from ray.exceptions import ActorUnavailableError, RayActorError

    async def pid() -> int | None:
        try:
            return await actor_store._actor.__ray_call__.remote(lambda self: os.getpid())
        except (ActorUnavailableError, RayActorError):
            return None

    cache = ResponseCache(actor_store)
    first = await cache.lookup(request("hello"), route="chain:bulk", tenant="t")
    await cache.store(first, answer(0.1))
    old_pid = await pid()
    ray_cluster.kill(actor_store._actor, no_restart=False)
    other = ResponseCache(actor_store)  # no LRU front: must ask the (dying or restarting) actor
    during = await other.lookup(request("hello"), route="chain:bulk", tenant="t")
    assert isinstance(during, CacheLookup)  # whatever state the actor is in: never an error
    for _ in range(400):  # the restart is another process (ray.kill is asynchronous): bounded wait
        current = await pid()
        if current is not None and current != old_pid:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("the cache actor did not restart")
    assert await actor_store.get(first.key) is None  # restarted empty
    await actor_store.set("k", answer(0.2), 60)
    assert (await actor_store.get("k")).cost_usd == 0.2
