"""Breaker by example: trip rules, growing cool-downs, probes, neutral outcomes, stale permits."""
from __future__ import annotations

import pickle

import pytest

from providers.breaker import Breaker, BreakerConfig, BreakerOpen, Permit, outcome_for
from providers.types import ERROR_CLASSES

T0 = 1_000.0


def fail_n(breaker: Breaker, n: int, now: float = T0) -> None:
    for _ in range(n):
        breaker.record_failure(breaker.acquire(now), now)


def test_consecutive_failures_trip_and_a_success_resets_the_streak():
    breaker = Breaker(BreakerConfig(consecutive_failures=3, min_calls=100))
    fail_n(breaker, 2)
    breaker.record_success(breaker.acquire(T0), T0)
    fail_n(breaker, 2)
    assert breaker.state(T0) == "closed"
    fail_n(breaker, 1)
    assert breaker.state(T0) == "open"
    refusal = breaker.acquire(T0)
    assert isinstance(refusal, BreakerOpen) and refusal.until == T0 + 5.0


def test_failure_rate_trips_only_after_min_calls_and_old_calls_expire():
    cfg = BreakerConfig(window_s=60, min_calls=10, failure_rate=0.5, consecutive_failures=100)
    breaker = Breaker(cfg)
    for i in range(9):
        outcome = "failure" if i % 2 else "success"
        breaker.record(breaker.acquire(T0), outcome, T0)
    assert breaker.state(T0) == "closed"  # 4 of 9, below min_calls anyway
    breaker.record_failure(breaker.acquire(T0), T0)  # 5 of 10
    assert breaker.state(T0) == "open"

    fresh = Breaker(cfg)
    fail_n(fresh, 5, T0)
    for _ in range(5):
        fresh.record_success(fresh.acquire(T0 + 61), T0 + 61)  # the 5 failures have expired
    fresh.record_failure(fresh.acquire(T0 + 61), T0 + 61)
    assert fresh.state(T0 + 61) == "closed"
    assert fresh.snapshot(T0 + 61)["window_calls"] == 6


def test_neutral_outcomes_do_not_count_in_closed():
    breaker = Breaker(BreakerConfig(consecutive_failures=2, min_calls=100))
    breaker.record_failure(breaker.acquire(T0), T0)
    breaker.record_neutral(breaker.acquire(T0), T0)  # neither a failure nor a success
    assert breaker.snapshot(T0)["consecutive_failures"] == 1
    breaker.record_failure(breaker.acquire(T0), T0)
    assert breaker.state(T0) == "open"


def test_cool_down_doubles_per_trip_up_to_the_cap_and_resets_on_close():
    cfg = BreakerConfig(consecutive_failures=1, base_cooldown_s=5, max_cooldown_s=30)
    breaker = Breaker(cfg)
    now = T0
    fail_n(breaker, 1, now)
    seen = []
    for _ in range(5):
        until = breaker.acquire(now).until
        seen.append(until - now)
        now = until
        probe = breaker.acquire(now)
        assert probe.probe
        breaker.record_failure(probe, now)
    assert seen == [5, 10, 20, 30, 30]
    now = breaker.acquire(now).until
    breaker.record_success(breaker.acquire(now), now)
    assert breaker.state(now) == "closed"
    fail_n(breaker, 1, now)
    assert breaker.acquire(now).until == now + 5


def test_half_open_grants_exactly_the_probes_and_refuses_the_rest_at_once():
    breaker = Breaker(BreakerConfig(consecutive_failures=1, probes=2, probe_timeout_s=30))
    fail_n(breaker, 1)
    now = T0 + 5
    p1, p2, p3 = breaker.acquire(now), breaker.acquire(now + 1), breaker.acquire(now + 2)
    assert isinstance(p1, Permit) and isinstance(p2, Permit) and p1.probe and p2.probe
    assert isinstance(p3, BreakerOpen) and p3.state == "half_open" and p3.until == now + 30
    breaker.record_success(p2, now + 3)
    assert breaker.state(now + 3) == "closed"
    breaker.record_failure(p1, now + 4)  # stale: the breaker closed since it was granted
    assert breaker.state(now + 4) == "closed"


def test_a_silent_probe_fails_at_its_timeout():
    breaker = Breaker(BreakerConfig(consecutive_failures=1, probe_timeout_s=30))
    fail_n(breaker, 1)
    probe = breaker.acquire(T0 + 5)
    assert breaker.state(T0 + 34.9) == "half_open"
    assert breaker.state(T0 + 35) == "open"  # re-opened at the deadline, with the 2nd cool-down
    assert breaker.acquire(T0 + 36).until == T0 + 35 + 10
    breaker.record_success(probe, T0 + 36)  # too late: ignored
    assert breaker.state(T0 + 36) == "open"


def test_a_neutral_probe_hands_its_permit_back_without_closing():
    breaker = Breaker(BreakerConfig(consecutive_failures=1))
    fail_n(breaker, 1)
    probe = breaker.acquire(T0 + 5)
    assert isinstance(breaker.acquire(T0 + 5), BreakerOpen)
    breaker.record_neutral(probe, T0 + 6)
    assert breaker.state(T0 + 6) == "half_open"
    assert isinstance(breaker.acquire(T0 + 6), Permit)


def test_outcomes_of_permits_from_before_a_trip_are_ignored():
    breaker = Breaker(BreakerConfig(consecutive_failures=2, base_cooldown_s=1))
    stale = [breaker.acquire(T0) for _ in range(3)]
    fail_n(breaker, 2)
    breaker.record_success(breaker.acquire(T0 + 1), T0 + 1)  # probe closes it
    for permit in stale:
        breaker.record_failure(permit, T0 + 2)
    assert breaker.state(T0 + 2) == "closed"
    assert breaker.snapshot(T0 + 2)["consecutive_failures"] == 0


def test_outcome_for_follows_the_taxonomy():
    for kind, cls in ERROR_CLASSES.items():
        expected = "failure" if cls.breaker_failure else "neutral"
        assert outcome_for(cls("x")) == expected, kind
    assert outcome_for(ERROR_CLASSES["server_error"]("x")) == "failure"
    assert outcome_for(ERROR_CLASSES["rate_limited"]("x")) == "neutral"
    assert outcome_for(ERROR_CLASSES["context_too_long"]("x")) == "neutral"
    assert outcome_for(None) == "success"
    assert outcome_for(TimeoutError()) == "failure"
    assert outcome_for(ValueError()) == "neutral"


def test_config_is_validated_and_refusals_pickle():
    with pytest.raises(ValueError):
        BreakerConfig(probes=0)
    with pytest.raises(ValueError):
        BreakerConfig(failure_rate=0)
    refusal = pickle.loads(pickle.dumps(BreakerOpen(7.5, "open")))
    assert (refusal.until, refusal.state) == (7.5, "open") and "open" in str(refusal)
