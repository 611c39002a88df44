"""The ProviderActor's composition (admit → call → retry → reconcile → breaker outcome) on a
scripted transport and a fake clock — the real class, without Ray."""
from __future__ import annotations

import asyncio

import pytest

from providers.actor import ProviderActor
from providers.clock import FakeClock
from providers.types import (
    AuthenticationError,
    BreakerOpenRefusal,
    ChatRequest,
    ChatResponse,
    Message,
    PlatformDisabledRefusal,
    RateLimitedError,
    RateLimitRefusal,
    ServerError,
    Usage,
)
from runtime.config import load_config

CFG = load_config()
MODEL = "gpt-4o-mini"  # openai: rpm 500, tpm 200k


class ScriptedTransport:
    def __init__(self, clock, outcomes=()):
        self.clock, self.outcomes, self.calls = clock, list(outcomes), []

    async def complete(self, request, model_id, budget_s):
        self.calls.append((self.clock.monotonic(), model_id))
        await asyncio.sleep(0)  # a real call yields: concurrent callers interleave here
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, Exception):
            raise outcome
        return ChatResponse("hi", Usage(10, 5), "stop", "openai", model_id), {}


def make_actor(outcomes=(), restarted=False, config=CFG):
    clock = FakeClock()
    actor = ProviderActor(config.platform_settings("openai"), "http://127.0.0.1:9/v1", simulated=True, clock=clock, restarted=restarted)
    actor.caller.transport = ScriptedTransport(clock, outcomes)
    return actor, clock


def req(max_tokens=50):
    return ChatRequest((Message("user", "hello"),), max_tokens=max_tokens, model=MODEL)


def run(coro):
    return asyncio.run(coro)


def test_retries_a_5xx_on_the_last_step_and_reconciles():
    actor, clock = make_actor([ServerError("boom", status=500)])
    result = run(actor.complete(req(), clock.time() + 60, retry=True))
    assert isinstance(result, ChatResponse) and result.attempts == 2
    status = run(actor.status())["models"][MODEL]
    assert status["limits"]["rpm"]["used"] == 2 and status["limits"]["in_flight"]["used"] == 0
    assert status["breaker"]["window_failures"] == 1


def test_no_retry_when_the_router_has_a_fallback():
    actor, clock = make_actor([ServerError("boom", status=500)])
    result = run(actor.complete(req(), clock.time() + 60, retry=False))
    assert isinstance(result, ServerError) and result.attempts == 1
    assert len(actor.caller.transport.calls) == 1


def test_a_429_cools_the_model_down_until_its_retry_time():
    actor, clock = make_actor([RateLimitedError("slow down", status=429, retry_after_s=7)])
    first = run(actor.complete(req(), clock.time() + 60))
    assert isinstance(first, RateLimitedError) and len(actor.caller.transport.calls) == 1  # no retry on 429
    clock.advance(6.9)
    refused = run(actor.complete(req(), clock.time() + 60))
    assert isinstance(refused, RateLimitRefusal) and refused.retry_after_s == pytest.approx(0.1, abs=1e-6)
    assert len(actor.caller.transport.calls) == 1  # nothing sent during the cool-down
    clock.advance(0.2)
    assert isinstance(run(actor.complete(req(), clock.time() + 60)), ChatResponse)


def test_waiting_for_capacity_is_event_driven_and_bounded_by_the_deadline():
    actor, clock = make_actor([RateLimitedError("slow down", status=429, retry_after_s=5)])
    run(actor.complete(req(), clock.time() + 60))
    sleeps_before = clock.monotonic()
    late = run(actor.complete(req(), clock.time() + 2, wait=True))  # deadline before the cool-down ends
    assert isinstance(late, RateLimitRefusal) and clock.monotonic() == sleeps_before
    served = run(actor.complete(req(), clock.time() + 30, wait=True))
    assert isinstance(served, ChatResponse)
    assert clock.monotonic() - sleeps_before == pytest.approx(5, abs=0.01)


def test_breaker_opens_then_grants_exactly_one_probe():
    failures = [ServerError("down", status=503)] * 5
    actor, clock = make_actor(failures)
    for _ in range(5):
        run(actor.complete(req(), clock.time() + 60, retry=False))
    refused = run(actor.complete(req(), clock.time() + 60))
    assert isinstance(refused, BreakerOpenRefusal) and refused.retry_after_s == pytest.approx(5)
    clock.advance(5)

    async def many():
        return await asyncio.gather(*(actor.complete(req(), clock.time() + 60, retry=False) for _ in range(50)))

    results = run(many())
    assert sum(isinstance(r, ChatResponse) for r in results) == 1
    assert sum(isinstance(r, BreakerOpenRefusal) for r in results) == 49
    assert len(actor.caller.transport.calls) == 6  # 5 failures + 1 probe
    assert run(actor.status())["models"][MODEL]["breaker"]["state"] == "closed"


def test_authentication_errors_disable_the_key_until_enabled():
    actor, clock = make_actor([AuthenticationError("bad key", status=401)])
    assert isinstance(run(actor.complete(req(), clock.time() + 60)), AuthenticationError)
    refused = run(actor.complete(req(), clock.time() + 60))
    assert isinstance(refused, PlatformDisabledRefusal) and refused.retry_after_s is None
    assert run(actor.status())["disabled"]["kind"] == "authentication"
    assert run(actor.enable()) is True
    assert isinstance(run(actor.complete(req(), clock.time() + 60)), ChatResponse)


def test_a_restarted_actor_starts_fully_reserved_for_one_window():
    actor, clock = make_actor(restarted=True)
    refused = run(actor.complete(req(), clock.time() + 60))
    assert isinstance(refused, RateLimitRefusal) and actor.caller.transport.calls == []
    clock.advance(60.2)
    assert isinstance(run(actor.complete(req(), clock.time() + 60)), ChatResponse)
    fresh, fresh_clock = make_actor(restarted=False)
    assert isinstance(run(fresh.complete(req(), fresh_clock.time() + 60)), ChatResponse)


def test_log_lines_of_a_call_carry_its_request_id():
    import io
    import json

    from runtime.logs import configure_logging

    out = io.StringIO()
    configure_logging(stream=out, secrets=[])
    actor, clock = make_actor([AuthenticationError("bad key", status=401)])

    async def call():
        await actor.complete(ChatRequest((Message("user", "x"),), max_tokens=5, model=MODEL, request_id="req_abc"),
                             clock.time() + 60)

    run(call())
    line = json.loads([l for l in out.getvalue().splitlines() if "platform_key_disabled" in l][0])
    assert (line["request_id"], line["platform"], line["model"]) == ("req_abc", "openai", MODEL)
