"""The fallback loop over a fake provider pool (no Ray, no HTTP)."""
import asyncio

import pytest

from providers.types import (
    BadRequestError,
    ChatRequest,
    ChatResponse,
    ContextTooLongError,
    Message,
    RateLimitedError,
    ServerError,
    StreamCutError,
    StreamEvent,
    UpstreamConnectionError,
    Usage,
)
from runtime.config import load_config
from runtime.core.router import AllProvidersFailed, ClientRequestError, Router
from runtime.core.routing import plan_for_use_case

CFG = load_config()
PLAN = plan_for_use_case(CFG, CFG.catalog(), "chat", "speed", 10, 10)  # groq → gemini → openrouter
REQ = ChatRequest(messages=(Message("user", "hi"),), max_tokens=10)


class FakePool:
    def __init__(self, outcomes):
        self.outcomes = outcomes
        self.calls = []

    async def complete(self, platform, request, deadline, *, wait=False, retry=True):
        self.calls.append((platform, request.model))
        outcome = self.outcomes[platform]
        if isinstance(outcome, Exception):
            return outcome
        return ChatResponse("answer", Usage(1000, 2000), "stop", platform, request.model)

    async def stream(self, platform, request, deadline, *, wait=False):
        self.calls.append((platform, request.model))
        outcome = self.outcomes[platform]
        if isinstance(outcome, Exception):
            yield outcome
            return
        for word in ("Hello", " streamed", " world"):
            yield StreamEvent("delta", word)
        if outcome == "cut":
            yield StreamCutError("cut", platform=platform, model=request.model)
            return
        yield StreamEvent("done", usage=Usage(12, 3), finish_reason="stop")


def run(coro):
    return asyncio.run(coro)


def test_first_platform_serves():
    pool = FakePool({"groq": "ok"})
    routed = run(Router(pool).execute(PLAN, REQ, 1e12))
    assert routed.response.platform == "groq" and routed.attempts == 1 and not routed.fallback_used
    assert routed.cost_usd == pytest.approx(PLAN.steps[0].model.cost_usd(1000, 2000))
    assert pool.calls == [("groq", "llama-3.3-70b-versatile")]


def test_failure_falls_back_and_counts_attempts():
    pool = FakePool({"groq": UpstreamConnectionError("down", platform="groq"), "gemini": "ok"})
    routed = run(Router(pool).execute(PLAN, REQ, 1e12))
    assert routed.response.platform == "gemini" and routed.attempts == 2 and routed.fallback_used
    assert [f.kind for f in routed.failures] == ["connection"]
    # the cost is the serving model's, not the failed one's
    assert routed.cost_usd == pytest.approx(PLAN.steps[1].model.cost_usd(1000, 2000))


def test_context_too_long_moves_on_but_bad_request_stops():
    pool = FakePool({"groq": ContextTooLongError("long", platform="groq"), "gemini": "ok"})
    assert run(Router(pool).execute(PLAN, REQ, 1e12)).response.platform == "gemini"
    pool = FakePool({"groq": BadRequestError("bad temperature", platform="groq"), "gemini": "ok"})
    with pytest.raises(ClientRequestError):
        run(Router(pool).execute(PLAN, REQ, 1e12))
    assert pool.calls == [("groq", "llama-3.3-70b-versatile")]


def test_all_failed_lists_every_failure():
    pool = FakePool(
        {
            "groq": RateLimitedError("slow down", platform="groq", retry_after_s=7),
            "gemini": ServerError("boom", platform="gemini", status=500),
            "openrouter": RateLimitedError("slow down", platform="openrouter", retry_after_s=3),
        }
    )
    with pytest.raises(AllProvidersFailed) as info:
        run(Router(pool).execute(PLAN, REQ, 1e12))
    assert [f.platform for f in info.value.failures] == ["groq", "gemini", "openrouter"]
    assert info.value.failures[0].retry_after_s == 7
