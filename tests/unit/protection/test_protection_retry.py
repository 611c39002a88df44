"""RetryPolicy (full jitter, Retry-After as a minimum, attempts, deadline) and RetryBudget."""
from __future__ import annotations

import random

import pytest

from providers.retry import RetryBudget, RetryPolicy
from providers.types import (
    BadRequestError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    StreamCutError,
    UpstreamTimeoutError,
)

NOW = 1_000.0
FAR = NOW + 10_000


def test_full_jitter_stays_within_the_ceiling_and_spans_it():
    policy = RetryPolicy(max_attempts=20, base_s=0.25, cap_s=8.0, rng=random.Random(1))
    for attempt, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (12, 8.0)]:
        assert policy.backoff_ceiling(attempt) == ceiling
        delays = [policy.next_delay(attempt, ServerError("x"), NOW, FAR) for _ in range(2_000)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert min(delays) < 0.05 * ceiling and max(delays) > 0.95 * ceiling  # full, not equal


def test_same_seed_same_delays():
    a = RetryPolicy(rng=random.Random(42))
    b = RetryPolicy(rng=random.Random(42))
    err = UpstreamTimeoutError("slow")
    assert [a.next_delay(1, err, NOW, FAR) for _ in range(5)] == [b.next_delay(1, err, NOW, FAR) for _ in range(5)]


def test_retry_after_is_a_minimum_even_above_the_cap():
    policy = RetryPolicy(cap_s=1.0, rng=random.Random(3))
    for _ in range(200):
        assert policy.next_delay(1, OverloadedError("503", retry_after_s=0.1), NOW, FAR) >= 0.1
    assert policy.next_delay(1, OverloadedError("503", retry_after_s=12.0), NOW, FAR) == 12.0


def test_no_retry_past_the_deadline():
    policy = RetryPolicy(rng=random.Random(5))
    assert policy.next_delay(1, OverloadedError("503", retry_after_s=5.0), NOW, NOW + 4.0) is None
    assert policy.next_delay(1, OverloadedError("503", retry_after_s=5.0), NOW, NOW + 5.0) is None
    assert policy.next_delay(1, OverloadedError("503", retry_after_s=5.0), NOW, NOW + 5.5) == 5.0
    assert policy.next_delay(1, ServerError("x"), NOW, NOW) is None


def test_attempts_are_capped_and_only_retryable_errors_retry():
    policy = RetryPolicy(max_attempts=3, rng=random.Random(0))
    assert policy.next_delay(2, ServerError("x"), NOW, FAR) is not None
    assert policy.next_delay(3, ServerError("x"), NOW, FAR) is None
    assert policy.next_delay(1, BadRequestError("x"), NOW, FAR) is None
    assert policy.next_delay(1, StreamCutError("x"), NOW, FAR) is None
    assert policy.next_delay(1, ValueError("bug"), NOW, FAR) is None
    with pytest.raises(ValueError):
        policy.next_delay(0, ServerError("x"), NOW, FAR)


def test_budget_lets_a_cold_start_retry_a_few_times():
    budget = RetryBudget(ratio=0.2, min_retries=3, window_s=60)
    assert [budget.try_spend_retry(NOW) for _ in range(4)] == [True, True, True, False]


def test_budget_caps_retries_at_the_ratio_of_recent_requests():
    budget = RetryBudget(ratio=0.2, min_retries=3, window_s=60)
    for _ in range(100):
        budget.record_request(NOW)
    spent = sum(budget.try_spend_retry(NOW + 1) for _ in range(50))
    assert spent == 20
    assert budget.snapshot(NOW + 1) == {"requests": 100, "retries": 20, "allowance": 20.0}


def test_budget_window_slides():
    budget = RetryBudget(ratio=0.2, min_retries=3, window_s=60)
    for _ in range(3):
        assert budget.try_spend_retry(NOW)
    assert not budget.try_spend_retry(NOW + 59.9)
    assert budget.try_spend_retry(NOW + 60)  # the first retries have left the window
    for _ in range(100):
        budget.record_request(NOW + 60)
    assert budget.allowance(NOW + 119) == 20.0
    assert budget.allowance(NOW + 120) == 3.0


def test_a_429_is_never_retried_on_the_same_model():
    policy = RetryPolicy(rng=random.Random(0))
    assert policy.next_delay(1, RateLimitedError("429", retry_after_s=0.1), 0.0, 1e9) is None
