"""Shared fixtures: Redis (skip or fail per SWITCHBOARD_REQUIRE_REDIS) and one Ray cluster per
test session."""
from __future__ import annotations

import os
import uuid

import pytest

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_required() -> bool:
    return os.environ.get("SWITCHBOARD_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis URL; skips (or fails in CI) when none answers."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if redis_required():
            pytest.fail(message + " (SWITCHBOARD_REQUIRE_REDIS=1)")
        pytest.skip(message)
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url):
    """A unique key prefix; every key under it is deleted afterwards."""
    import redis

    prefix = f"switchboard-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session (loopback only, no dashboard)."""
    import ray

    from runtime.app import use_loopback_only

    use_loopback_only()
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            namespace=f"switchboard-test-{uuid.uuid4().hex[:8]}",
            configure_logging=False,
            log_to_driver=False,
        )
    yield ray
