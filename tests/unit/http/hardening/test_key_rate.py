"""Per-key requests/minute: a shared window per key, 429 with Retry-After past it."""
import asyncio

import pytest

from providers.clock import FakeClock
from runtime.http.key_rate import MemoryKeyRate, RedisKeyRate, enforce
from runtime.http.errors import ApiError
from tests.unit.http.hardening.conftest import ADMIN, USER_A, USER_B, FakePrincipal, build_app, client_for


def run(coro):
    return asyncio.run(coro)


def test_window_admits_rpm_then_says_when():
    clock = FakeClock()
    limiter = MemoryKeyRate(clock=clock)
    assert [run(limiter.admit("k", 2)) for _ in range(2)] == [None, None]
    clock.advance(10)
    wait = run(limiter.admit("k", 2))
    assert wait == pytest.approx(50.0)
    assert run(limiter.admit("other", 2)) is None  # keys do not share a window
    clock.advance(50.001)
    assert run(limiter.admit("k", 2)) is None


def test_a_changed_limit_applies_at_once():
    limiter = MemoryKeyRate(clock=FakeClock())
    run(limiter.admit("k", 1))
    assert run(limiter.admit("k", 1)) is not None
    assert run(limiter.admit("k", 5)) is None


def test_http_429_with_retry_after_for_the_limited_key_only():
    app = build_app(rpm=2, key_rate=MemoryKeyRate(clock=FakeClock()))
    alice, bob, admin = client_for(app, USER_A), client_for(app, USER_B), client_for(app, ADMIN)
    assert [alice.get("/v1/models").status_code for _ in range(2)] == [200, 200]
    r = alice.post("/api/ai/route", json={"query": "hi"})
    assert r.status_code == 429 and r.headers["retry-after"] == "60"
    assert r.json()["error"]["type"] == "rate_limited" and "key_a" in r.json()["error"]["message"]
    assert bob.get("/v1/models").status_code == 200
    assert all(admin.get("/v1/models").status_code == 200 for _ in range(5))  # no rpm: unlimited
    assert app.state.pool.calls == []


def test_an_unreachable_limiter_lets_requests_through():
    class Down:
        async def admit(self, key_id, rpm):
            raise ConnectionError("redis down")

    run(enforce(Down(), FakePrincipal("u", "k", False, rpm=1)))  # no exception: fail open


def test_over_limit_raises_api_error():
    limiter = MemoryKeyRate(clock=FakeClock())
    who = FakePrincipal("u", "k", False, rpm=1)
    run(enforce(limiter, who))
    with pytest.raises(ApiError) as caught:
        run(enforce(limiter, who))
    assert caught.value.status == 429 and caught.value.headers["retry-after"] == "60"


def test_redis_window_is_shared_by_two_clients(redis_url, redis_prefix):
    import redis.asyncio as redis

    clock = FakeClock()

    async def scenario():
        one = RedisKeyRate(redis.Redis.from_url(redis_url), clock=clock, prefix=redis_prefix)
        two = RedisKeyRate(redis.Redis.from_url(redis_url), clock=clock, prefix=redis_prefix)
        out = [await one.admit("k", 2), await two.admit("k", 2)]
        clock.advance(15)
        out.append(await two.admit("k", 2))
        clock.advance(45.5)
        out.append(await one.admit("k", 2))
        await one.close()
        await two.close()
        return out

    first, second, refused, later = run(scenario())
    assert first is None and second is None and later is None
    assert refused == pytest.approx(45.0, abs=0.01)
