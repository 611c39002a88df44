"""The Blackboard actor on a local Ray cluster: delegation, typed errors across the hop, and
Redis-backed sessions that survive an actor restart."""
from __future__ import annotations

import os
import time
import uuid

import pytest

ray = pytest.importorskip("ray")

from blackboard.board import BlackboardActor, blackboard_actor_options  # noqa: E402
from blackboard.models import BlackboardFull, InvalidEntry, Limits  # noqa: E402
from blackboard.store import KEY_ROOT  # noqa: E402
from providers.clock import FakeClock  # noqa: E402

pytestmark = pytest.mark.ray

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ENTRY = {"agent_id": "structure", "role": "structure", "platform": "openai", "insight": "ok",
         "confidence": 0.9}


@pytest.fixture
def redis_namespace():
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("SWITCHBOARD_REQUIRE_REDIS") == "1":
            pytest.fail(message + " (SWITCHBOARD_REQUIRE_REDIS=1)")
        pytest.skip(message)
    namespace = "test-" + uuid.uuid4().hex[:12]
    yield namespace
    keys = list(client.scan_iter(match=f"{KEY_ROOT}{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _pid(_actor) -> int:
    return os.getpid()


def _wait_for_restart(actor, old_pid: int, timeout_s: float = 60.0) -> int:
    """Poll the actor's pid until a new process answers (ray.kill lands asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            pid = ray.get(actor.__ray_call__.remote(_pid), timeout=timeout_s)
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.RayActorError):
            continue
        if pid != old_pid:
            return pid
    pytest.fail(f"the actor did not restart within {timeout_s} s")


def _start(redis_url, namespace, **kwargs):
    name = f"blackboard-{uuid.uuid4().hex[:8]}"
    actor = BlackboardActor.options(**blackboard_actor_options(name=name)).remote(
        redis_url, namespace, **kwargs
    )
    ray.get(actor.__ray_ready__.remote(), timeout=60)
    return actor


def test_actor_options():
    options = blackboard_actor_options(name="bb", namespace="ns")
    assert options == {
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "name": "bb",
        "namespace": "ns",
    }


def test_memory_actor_delegates_and_raises_typed_errors(ray_cluster):
    actor = _start(None, "default", clock=FakeClock(), limits=Limits(max_entries=1))
    try:
        assert ray.get(actor.backend.remote()) == "memory"
        entry = ray.get(actor.write.remote("s1", ENTRY))
        assert ray.get(actor.read.remote("s1", role="structure")) == [entry]
        with pytest.raises(BlackboardFull):
            ray.get(actor.write.remote("s1", ENTRY))
        with pytest.raises(InvalidEntry):
            ray.get(actor.write.remote("s2", {**ENTRY, "confidence": 7}))
        assert ray.get(actor.clear.remote("s1")) == 1
        assert ray.get(actor.sessions.remote()) == []
    finally:
        ray.kill(actor, no_restart=True)


def test_redis_backed_sessions_survive_an_actor_restart(ray_cluster, redis_namespace):
    actor = _start(REDIS_URL, redis_namespace)
    try:
        assert ray.get(actor.backend.remote()) == "redis"
        written = [ray.get(actor.write.remote("review-1", {**ENTRY, "insight": str(i)}))
                   for i in range(3)]
        pid_before = ray.get(actor.__ray_call__.remote(_pid))

        ray.kill(actor, no_restart=False)
        _wait_for_restart(actor, pid_before)

        assert ray.get(actor.read_all.remote("review-1"), timeout=60) == written
        assert ray.get(actor.sessions.remote()) == ["review-1"]
        ray.get(actor.write.remote("review-1", ENTRY))
        assert len(ray.get(actor.read_all.remote("review-1"))) == 4
    finally:
        ray.kill(actor, no_restart=True)
