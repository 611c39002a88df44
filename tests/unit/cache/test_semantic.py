"""The semantic layer: a paraphrase hits only when asked for, and only with identical
parameters, system prompt and tenant."""
from __future__ import annotations

import numpy as np
import pytest

from providers.types import ChatRequest, Message
from runtime.cache.keys import CachePolicy
from runtime.cache.response_cache import ResponseCache
from runtime.cache.embed import BatchingEmbedder
from runtime.cache.semantic import (
    DEFAULT_THRESHOLD, SemanticCache, SemanticIndex, partition_key, query_text,
)
from tests.unit.cache.cache_helpers import make_answer, make_request

ROUTE = "chain:code_quality"
QUESTION = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a list in Python?"
NEAR_MISS = "How do I sort a list in Python?"
UNRELATED = "What is the capital of France?"


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float32)
    return v / np.linalg.norm(v)


# ------------------------------------------------------------------------- pure index / keys


def test_index_returns_the_best_match_above_threshold_in_its_partition():
    index = SemanticIndex(dim=2)
    index.add("p", "east", unit(1, 0))
    index.add("p", "north", unit(0, 1))
    index.add("q", "other", unit(1, 0.05))
    key, score = index.lookup("p", unit(1, 0.1), threshold=0.9)
    assert key == "east" and score == pytest.approx(float(unit(1, 0.1)[0]))
    assert index.lookup("p", unit(1, 1), threshold=0.9) is None  # 0.707 < 0.9
    assert index.lookup("missing", unit(1, 0), threshold=0.0) is None


def test_index_removal_keeps_the_other_rows_right():
    index = SemanticIndex(dim=2)
    for i, angle in enumerate(np.linspace(0, np.pi / 2, 5)):
        index.add("p", f"k{i}", unit(np.cos(angle), np.sin(angle)))
    assert index.remove("k1") and not index.remove("k1")
    assert index.lookup("p", unit(1, 0), 0.99)[0] == "k0"
    assert index.lookup("p", unit(0, 1), 0.99)[0] == "k4"  # moved into k1's row
    assert len(index) == 4


def test_index_is_bounded_oldest_first_and_readding_moves_a_key():
    index = SemanticIndex(dim=2, max_entries=2)
    index.add("p", "a", unit(1, 0))
    index.add("p", "b", unit(0, 1))
    index.add("q", "a", unit(1, 0))  # re-added: now newest, and in partition q
    index.add("p", "c", unit(1, 1))
    assert "b" not in index and "a" in index and len(index) == 2
    assert index.lookup("p", unit(1, 0), 0.99) is None
    assert index.lookup("q", unit(1, 0), 0.99)[0] == "a"


def test_partition_ignores_only_the_last_user_text():
    base = make_request(QUESTION)
    same = partition_key(make_request(PARAPHRASE), route=ROUTE, tenant="t")
    assert partition_key(base, route=ROUTE, tenant="t") == same
    for other in (
        partition_key(make_request(PARAPHRASE, system="Be verbose."), route=ROUTE, tenant="t"),
        partition_key(make_request(PARAPHRASE, temperature=0.2), route=ROUTE, tenant="t"),
        partition_key(make_request(PARAPHRASE, response_format="json_object"), route=ROUTE, tenant="t"),
        partition_key(make_request(PARAPHRASE), route="chain:code_cost", tenant="t"),
        partition_key(make_request(PARAPHRASE), route=ROUTE, tenant="u"),
    ):
        assert other != same
    history = ChatRequest(messages=(Message("user", "hi"), Message("assistant", "hello"), Message("user", QUESTION)))
    changed = ChatRequest(messages=(Message("user", "hey"), Message("assistant", "hello"), Message("user", QUESTION)))
    assert partition_key(history, route=ROUTE, tenant="t") != partition_key(changed, route=ROUTE, tenant="t")


def test_query_text_is_the_last_user_turn():
    assert query_text(make_request(QUESTION)) == QUESTION
    assert query_text(ChatRequest(messages=(Message("user", "q"), Message("assistant", "prefill")))) is None
    assert query_text(make_request("   ")) is None


# ------------------------------------------------------------------------- with the real model


@pytest.fixture
def front(embedder, clock):
    return BatchingEmbedder(embedder, clock=clock)


def replica(backend, front, *, policy: CachePolicy = CachePolicy()) -> ResponseCache:
    semantic = SemanticCache(backend.store, front, clock=backend.clock)
    return backend.track(
        ResponseCache(backend.store, policy=policy, semantic=semantic, clock=backend.clock)
    )


async def ask(
    cache, text, *, mode="semantic", tenant="acme", system="You are concise.", cost=0.05, store=True
):
    """Look up; on a miss (and `store`), keep an answer as the router would after the call."""
    request = make_request(text, system=system)
    lookup = await cache.lookup(request, route=ROUTE, tenant=tenant, mode=mode)
    if store and not lookup.hit:
        await cache.store(lookup, make_answer(f"answer to {text}", cost_usd=cost, created_at=cache._clock.time()))
    return lookup


async def test_a_paraphrase_hits_only_with_semantic_opt_in(backend, front):
    cache = replica(backend, front)
    await ask(cache, QUESTION, cost=0.05)
    assert not (await ask(cache, PARAPHRASE, mode=None, store=False)).hit
    assert not (await ask(cache, PARAPHRASE, mode="exact", store=False)).hit
    hit = await ask(cache, PARAPHRASE)
    assert hit.hit and hit.source == "semantic" and hit.score >= DEFAULT_THRESHOLD
    assert hit.answer.text == f"answer to {QUESTION}"
    stats = await cache.stats()
    assert stats.semantic_hits == 1 and stats.hits == 1
    assert stats.saved_usd == pytest.approx(0.05)


@pytest.mark.parametrize(
    "change",
    [{"system": "You answer in French."}, {"tenant": "globex"}, {"text": NEAR_MISS}, {"text": UNRELATED}],
)
async def test_no_hit_across_system_prompt_tenant_or_meaning(backend, front, change):
    cache = replica(backend, front)
    await ask(cache, QUESTION)
    args = {"text": PARAPHRASE, **change}
    assert not (await ask(cache, args.pop("text"), **args)).hit


async def test_use_case_configured_for_semantic_needs_no_opt_in(backend, front):
    cache = replica(backend, front, policy=CachePolicy(semantic_use_cases=frozenset({"code"})))
    for text in (QUESTION, PARAPHRASE):
        lookup = await cache.lookup(make_request(text), route=ROUTE, tenant="a", mode=None, use_case="code")
        if not lookup.hit:
            await cache.store(lookup, make_answer(created_at=backend.clock.time()))
    assert lookup.source == "semantic"


async def test_a_new_replica_rebuilds_its_index_from_the_store(backend, front):
    await ask(replica(backend, front), QUESTION)
    fresh = replica(backend, front)
    assert await fresh.semantic.start() == 1
    assert (await ask(fresh, PARAPHRASE)).source == "semantic"


async def test_running_replicas_pick_up_each_others_vectors(backend, front):
    a, b = replica(backend, front), replica(backend, front)
    await ask(b, UNRELATED)  # b has synced once
    await ask(a, QUESTION)
    assert not (await ask(b, PARAPHRASE, store=False)).hit  # b's view is less than sync_interval_s old
    backend.clock.advance(1.0)
    assert (await ask(b, PARAPHRASE)).source == "semantic"


async def test_a_match_whose_entry_expired_is_a_miss_and_is_forgotten(backend, front):
    cache = replica(backend, front, policy=CachePolicy(ttl_s=60))
    original = await ask(cache, QUESTION)
    await backend.store.delete(original.key)  # what expiry does in Redis
    assert not (await ask(cache, PARAPHRASE)).hit
    assert original.key not in cache.semantic.index


async def test_text_longer_than_the_model_window_is_not_compared(backend, front):
    cache = replica(backend, front)
    long_text = "Please summarise this. " + "lorem ipsum dolor sit amet " * 80
    assert (await ask(cache, long_text)).probe is None
    await ask(cache, long_text)  # the exact layer still works
    assert (await cache.stats()).hits == 1
