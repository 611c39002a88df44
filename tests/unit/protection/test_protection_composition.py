"""The recipe a ProviderActor follows (admit -> call -> retry -> reconcile -> breaker outcome),
written out once against a scripted upstream: the pieces compose without glue."""
from __future__ import annotations

import itertools
import random

from providers.breaker import Breaker, BreakerConfig, BreakerOpen, outcome_for
from providers.limits import Limits, LimitState
from providers.retry import RetryBudget, RetryPolicy
from providers.types import ProviderError, RateLimitedError, ServerError


async def protected_call(clock, limits, breaker, policy, budget, upstream, tokens, deadline):
    budget.record_request(clock.monotonic())
    for attempt in itertools.count(1):
        reservation = await limits.acquire(tokens, deadline)
        permit = breaker.acquire(clock.monotonic())
        if isinstance(permit, BreakerOpen):
            limits.cancel(reservation)
            return permit, attempt
        try:
            used = await upstream()
        except ProviderError as err:
            limits.release(reservation)
            if isinstance(err, RateLimitedError) and err.retry_after_s:
                limits.cool_down(clock.monotonic() + err.retry_after_s)
            breaker.record(permit, outcome_for(err), clock.monotonic())
            delay = policy.next_delay(attempt, err, clock.monotonic(), deadline)
            if delay is None or not budget.try_spend_retry(clock.monotonic()):
                return err, attempt
            await clock.sleep(delay)
        else:
            limits.reconcile(reservation, used)
            breaker.record_success(permit, clock.monotonic())
            return used, attempt


def scripted(*outcomes):
    queue = list(outcomes)

    async def upstream():
        outcome = queue.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return upstream


async def test_a_5xx_then_a_429_then_success(counting_clock):
    clock = counting_clock
    limits = LimitState(Limits(rpm=10, tpm=1_000), clock=clock, scale=0.02, guard_s=0.0)
    breaker = Breaker()
    budget = RetryBudget()
    upstream = scripted(ServerError("503"), RateLimitedError("429", retry_after_s=0.5), 42)
    start = clock.monotonic()

    result, attempts = await protected_call(
        clock, limits, breaker, RetryPolicy(rng=random.Random(0)), budget, upstream, 100, start + 30
    )

    assert (result, attempts) == (42, 3)
    assert clock.monotonic() >= start + 0.5  # waited out the Retry-After
    report = limits.headroom(clock.monotonic())
    assert report["rpm"]["used"] == 3 and report["tpm"]["used"] == 100 + 100 + 42
    assert report["in_flight"]["used"] == 0
    snap = breaker.snapshot(clock.monotonic())
    assert snap["state"] == "closed" and snap["window_failures"] == 1 and snap["window_calls"] == 2
    assert budget.snapshot(clock.monotonic())["retries"] == 2


async def test_an_open_breaker_refunds_the_reservation(counting_clock):
    clock = counting_clock
    limits = LimitState(Limits(rpm=10, tpm=1_000), clock=clock, scale=0.02)
    breaker = Breaker(BreakerConfig(consecutive_failures=1))
    breaker.record_failure(breaker.acquire(clock.monotonic()), clock.monotonic())

    result, attempts = await protected_call(
        clock, limits, breaker, RetryPolicy(), RetryBudget(), scripted(), 100, clock.monotonic() + 30
    )

    assert isinstance(result, BreakerOpen) and attempts == 1
    assert limits.headroom(clock.monotonic())["tpm"]["used"] == 0
    assert limits.headroom(clock.monotonic())["rpm"]["used"] == 0
