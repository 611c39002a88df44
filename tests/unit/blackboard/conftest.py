"""Blackboard store fixtures: every store test runs against memory and Redis.

Redis tests use their own namespace (deleted afterwards) and skip when Redis is unreachable,
unless SWITCHBOARD_REQUIRE_REDIS=1, in which case they fail.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest

from blackboard.models import Limits
from blackboard.store import KEY_ROOT, MemoryStore, RedisStore
from providers.clock import FakeClock

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _require_redis() -> str:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("SWITCHBOARD_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (SWITCHBOARD_REQUIRE_REDIS=1)")
        pytest.skip(message)
    return REDIS_URL


def delete_namespace(url: str, namespace: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{KEY_ROOT}{namespace}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def bb_namespace() -> str:
    return "test-" + uuid.uuid4().hex[:12]


@pytest.fixture
def bb_redis_url(bb_namespace):
    url = _require_redis()
    yield url
    delete_namespace(url, bb_namespace)


StoreFactory = Callable[..., MemoryStore | RedisStore]


@pytest.fixture(params=["memory", "redis"])
async def make_store(request, clock, bb_namespace):
    """A factory `make_store(limits=Limits())`; all stores it makes share one backend."""
    made: list[MemoryStore | RedisStore] = []
    memory: dict[Limits, MemoryStore] = {}
    url = request.getfixturevalue("bb_redis_url") if request.param == "redis" else None

    def factory(limits: Limits = Limits()) -> MemoryStore | RedisStore:
        if url is None:
            store = memory.setdefault(limits, MemoryStore(clock=clock, limits=limits))
        else:
            store = RedisStore.from_url(url, namespace=bb_namespace, clock=clock, limits=limits)
        made.append(store)
        return store

    factory.backend = request.param  # type: ignore[attr-defined]
    yield factory
    for store in made:
        if isinstance(store, RedisStore):
            await store.close()


@pytest.fixture
def store(make_store):
    return make_store()
