"""The exact key covers everything that shapes an answer, and nothing is normalised away."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.clock import FakeClock
from providers.types import ChatRequest, Message
from runtime.cache.keys import CachePolicy, cache_key, should_cache
from runtime.cache.entries import LRUCache
from tests.unit.cache.cache_helpers import make_request

ROUTE = "chain:chat_cost"


def key(request: ChatRequest, route: str = ROUTE, tenant: str | None = "acme") -> str:
    return cache_key(request, route=route, tenant=tenant)


def test_key_is_versioned_sha256_and_deterministic():
    k = key(make_request())
    assert k.startswith("v1:") and len(k) == 3 + 64
    assert k == key(make_request())


def test_request_id_and_attempt_model_do_not_change_the_key():
    base = make_request()
    assert key(base) == key(replace(base, request_id="req_other", model="gpt-4o"))


def test_integer_and_float_parameters_hash_alike():
    assert key(make_request(temperature=0)) == key(make_request(temperature=0.0))
    assert key(make_request(temperature=-0.0)) == key(make_request(temperature=0.0))


@pytest.mark.parametrize(
    "other",
    [
        make_request(system="You are verbose."),
        make_request(system=None),
        make_request(temperature=0.2),
        make_request(max_tokens=257),
        make_request(top_p=0.9),
        make_request(stop=("\n",)),
        make_request(response_format="json_object"),
        make_request("what is the capital of France?"),  # case
        make_request("What is the capital of France? "),  # trailing space
        make_request("What  is the capital of France?"),  # inner whitespace
    ],
)
def test_any_difference_in_the_request_changes_the_key(other):
    assert key(other) != key(make_request())


def test_route_and_tenant_are_part_of_the_key():
    base = make_request()
    assert key(base, route="chain:chat_speed") != key(base)
    assert key(base, tenant="globex") != key(base)
    assert key(base, tenant=None) != key(base)  # shared cache is its own scope


def test_roles_and_message_order_matter():
    a = ChatRequest(messages=(Message("user", "hi"), Message("assistant", "hello")))
    b = ChatRequest(messages=(Message("assistant", "hi"), Message("user", "hello")))
    c = ChatRequest(messages=(Message("assistant", "hello"), Message("user", "hi")))
    assert len({key(a), key(b), key(c)}) == 3


texts = st.text(max_size=20)


@given(a=st.lists(texts, min_size=1, max_size=4), b=st.lists(texts, min_size=1, max_size=4))
def test_keys_collide_only_for_identical_conversations(a, b):
    ra = ChatRequest(messages=tuple(Message("user", t) for t in a), temperature=0.0)
    rb = ChatRequest(messages=tuple(Message("user", t) for t in b), temperature=0.0)
    assert (key(ra) == key(rb)) == (a == b)


@pytest.mark.parametrize(
    ("temperature", "mode", "expected"),
    [
        (0.0, None, True),
        (0.3, None, True),
        (0.31, None, False),
        (None, None, False),  # absent = provider default 1.0
        (1.2, "exact", True),
        (None, "semantic", True),
        (0.0, "off", False),
    ],
)
def test_should_cache(temperature, mode, expected):
    assert should_cache(make_request(temperature=temperature), mode) is expected


def test_policy_semantic_scope_and_threshold():
    policy = CachePolicy(max_temperature=0.5, shared=True, semantic_use_cases=frozenset({"bulk"}))
    assert policy.cacheable(make_request(temperature=0.5), None)
    assert policy.scope("acme") is None
    assert CachePolicy().scope("acme") == "acme"
    assert policy.semantic("semantic", None) and policy.semantic(None, "bulk")
    assert not policy.semantic(None, "chat") and not policy.semantic("exact", "bulk")


def test_lru_evicts_least_recently_used():
    lru: LRUCache[int] = LRUCache(2, FakeClock())
    lru.set("a", 1, 60)
    lru.set("b", 2, 60)
    assert lru.get("a") == 1
    lru.set("c", 3, 60)
    assert lru.get("b") is None and lru.get("a") == 1 and lru.get("c") == 3
    assert len(lru) == 2


def test_lru_entries_expire_on_the_clock():
    clock = FakeClock()
    lru: LRUCache[str] = LRUCache(10, clock)
    lru.set("a", "x", 10)
    clock.advance(9.9)
    assert lru.get("a") == "x" and lru.ttl("a") == pytest.approx(0.1)
    clock.advance(0.1)
    assert lru.get("a") is None and lru.ttl("a") is None
    lru.set("b", "y", 1)
    lru.set("c", "z", 5)
    clock.advance(2)
    assert lru.purge_expired() == 1 and "c" in lru and "b" not in lru
