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


# Set by `ray_cluster` when it starts Ray: where Ray's Prometheus endpoint listens.
_RAY_METRICS: dict[str, int] = {}
METRICS_REPORT_INTERVAL_MS = 2000  # Ray's default is 10 s; metric tests wait on a flush


@pytest.fixture(scope="session")
def ray_cluster():
    """One local Ray cluster for the whole session (loopback only, no dashboard); its metrics
    export port is free-picked (see `ray_metrics_port`)."""
    import ray

    from runtime.app import use_loopback_only
    from runtime.simulator_process import free_port

    use_loopback_only()
    if not ray.is_initialized():
        port = free_port()
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _metrics_export_port=port,
            _system_config={"metrics_report_interval_ms": METRICS_REPORT_INTERVAL_MS},
            namespace=f"switchboard-test-{uuid.uuid4().hex[:8]}",
            configure_logging=False,
            log_to_driver=False,
        )
        _RAY_METRICS["port"] = port
    yield ray


@pytest.fixture(scope="session")
def ray_metrics_port(ray_cluster) -> int:
    """The port of Ray's Prometheus endpoint (`GET http://127.0.0.1:<port>/metrics`)."""
    if "port" not in _RAY_METRICS:
        pytest.skip("Ray was started outside the ray_cluster fixture: its metrics port is unknown")
    return _RAY_METRICS["port"]
