"""LimitState by example: event-driven waiting, refusals, upstream tightening, settle mode,
headroom, and the long-run log (compaction) against a naive count."""
from __future__ import annotations

import asyncio
import math
import pickle
import random

import pytest

from providers.wire.ratelimit import RateLimitInfo

from providers.catalog import ModelSpec
from providers.clock import FakeClock
from providers.limits import LimitExceeded, Limits, LimitState

W = 1.2  # one "minute" at scale 0.02


def make(clock, guard_s=0.0, **limits) -> LimitState:
    return LimitState(Limits(**limits), clock=clock, scale=0.02, guard_s=guard_s)


# -- acquire: waits once for the computed time, or is woken early -----------------------------


async def test_acquire_sleeps_once_for_exactly_the_computed_time(counting_clock):
    limits = make(counting_clock, rpm=2)
    t0 = counting_clock.monotonic()
    limits.try_acquire(10, t0)
    counting_clock.advance(0.5)
    limits.try_acquire(10, t0 + 0.5)
    expected = limits.when_available(10, t0 + 0.5)
    assert expected == t0 + W

    reservation = await limits.acquire(10, deadline=t0 + 10)

    assert counting_clock.sleeps == [pytest.approx(W - 0.5)]
    assert reservation.at == expected


async def test_acquire_is_woken_by_a_release_without_polling(stepped_clock):
    limits = make(stepped_clock, max_in_flight=1)
    first = limits.try_acquire(5, stepped_clock.monotonic())
    waiter = asyncio.create_task(limits.acquire(5, deadline=stepped_clock.monotonic() + 30))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiter.done() and stepped_clock.sleeps == [30.0]

    limits.release(first)
    second = await asyncio.wait_for(waiter, timeout=5)

    assert second.at == stepped_clock.monotonic()  # no time passed: woken by the event
    assert stepped_clock.sleeps == [30.0]


async def test_acquire_is_woken_by_a_refund(stepped_clock):
    limits = make(stepped_clock, tpm=100)
    big = limits.try_acquire(80, stepped_clock.monotonic())
    waiter = asyncio.create_task(limits.acquire(50, deadline=stepped_clock.monotonic() + 5))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert stepped_clock.sleeps == [pytest.approx(W)]

    limits.reconcile(big, 20)  # the call used 20: 60 tokens come back now
    got = await asyncio.wait_for(waiter, timeout=5)

    assert got.tokens == 50 and got.at == stepped_clock.monotonic()
    assert len(stepped_clock.sleeps) == 1


async def test_acquire_refuses_at_once_when_the_deadline_is_too_close(counting_clock):
    limits = make(counting_clock, rpm=1)
    now = counting_clock.monotonic()
    limits.try_acquire(1, now)
    with pytest.raises(LimitExceeded) as info:
        await limits.acquire(1, deadline=now + W / 2)
    assert info.value.until == now + W and info.value.dimension == "rpm"
    assert counting_clock.sleeps == []


async def test_acquire_refuses_a_request_larger_than_the_limit(counting_clock):
    limits = make(counting_clock, tpm=100)
    with pytest.raises(LimitExceeded) as info:
        await limits.acquire(101, deadline=math.inf)
    assert info.value.until == math.inf and info.value.dimension == "tpm"
    assert counting_clock.sleeps == []


async def test_in_flight_wait_ends_at_the_deadline(counting_clock):
    limits = make(counting_clock, max_in_flight=1)
    now = counting_clock.monotonic()
    limits.try_acquire(1, now)
    with pytest.raises(LimitExceeded) as info:
        await limits.acquire(1, deadline=now + 3)
    assert info.value.dimension == "in_flight"
    assert counting_clock.sleeps == [3.0]


def test_limit_exceeded_survives_pickling():
    err = pickle.loads(pickle.dumps(LimitExceeded(12.5, "tpm")))
    assert (err.until, err.dimension) == (12.5, "tpm") and "tpm" in str(err)


# -- finishing reservations ---------------------------------------------------------------------


def test_reconcile_release_and_cancel_charge_what_they_say():
    clock = FakeClock()
    limits = make(clock, rpm=10, tpm=1_000, rpd=100)
    now = clock.monotonic()
    a, b, c = (limits.try_acquire(100, now) for _ in range(3))
    limits.reconcile(a, 30)  # refund 70
    limits.release(b)  # keeps its 100
    limits.cancel(c)  # never sent: gone from every dimension
    report = limits.headroom(now)
    assert report["tpm"]["used"] == 130
    assert report["rpm"]["used"] == 2 and report["rpd"]["used"] == 2
    assert report["in_flight"]["used"] == 0
    limits.release(b)  # idempotent
    with pytest.raises(ValueError):
        limits.reconcile(a, 30)
    with pytest.raises(ValueError):
        limits.cancel(b)


def test_a_call_finishing_after_its_window_counts_again_for_a_window_from_its_finish():
    """In flight longer than a window: its charge lapsed (a new call was admitted); when it
    finishes it counts again (the upstream may have seen it late), so `used` passes the limit,
    `remaining` stays 0 and nothing is admitted until a window after the finish."""
    clock = FakeClock()
    limits = make(clock, rpm=1)
    slow = limits.try_acquire(0, clock.monotonic())
    clock.advance(W)
    assert limits.try_acquire(0, clock.monotonic()) is not None  # the slow call's charge lapsed
    limits.release(slow)
    report = limits.headroom(clock.monotonic())
    assert (report["rpm"]["used"], report["rpm"]["remaining"]) == (2, 0)
    assert limits.when_available(0, clock.monotonic()) == clock.monotonic() + W


def test_usage_above_the_reservation_is_charged_as_it_was():
    clock = FakeClock()
    limits = make(clock, tpm=100)
    now = clock.monotonic()
    r = limits.try_acquire(40, now)
    limits.reconcile(r, 90)
    assert limits.headroom(now)["tpm"]["used"] == 90
    assert limits.when_available(20, now) == now + W  # waits for the overrun to expire


# -- tightening ------------------------------------------------------------------------------


def test_cool_down_refuses_until_then_and_never_shortens():
    clock = FakeClock()
    limits = make(clock, rpm=10)
    now = clock.monotonic()
    limits.cool_down(now + 4)
    limits.cool_down(now + 2)
    assert limits.try_acquire(1, now + 3.9) is None
    assert limits.when_available(1, now) == now + 4
    assert limits.try_acquire(1, now + 4) is not None


async def test_acquire_reports_a_cool_down(counting_clock):
    limits = make(counting_clock, rpm=10)
    now = counting_clock.monotonic()
    limits.cool_down(now + 4)
    with pytest.raises(LimitExceeded) as info:
        await limits.acquire(1, deadline=now + 1)
    assert (info.value.until, info.value.dimension) == (now + 4, "cool_down")


def test_headers_tighten_but_never_loosen_beyond_the_catalog():
    clock = FakeClock()
    limits = make(clock, rpm=10, tpm=1_000)
    now = clock.monotonic()
    limits.observe_headers(RateLimitInfo(limit_requests=5, limit_tokens=5_000), now)
    report = limits.headroom(now)
    assert report["rpm"]["limit"] == 5 and report["tpm"]["limit"] == 1_000
    limits.observe_headers(RateLimitInfo(limit_requests=8), now)
    assert limits.headroom(now)["rpm"]["limit"] == 8


def test_remaining_from_headers_is_a_floor_until_the_reset():
    clock = FakeClock()
    limits = make(clock, tpm=1_000)
    now = clock.monotonic()
    info = RateLimitInfo(limit_tokens=1_000, remaining_tokens=100, reset_tokens_s=0.5)
    limits.observe_headers(info, now)  # someone else used 900: we had not sent a thing
    assert limits.headroom(now)["tpm"]["used"] == 900
    assert limits.try_acquire(200, now) is None
    assert limits.when_available(200, now) == now + 0.5
    assert limits.try_acquire(200, now + 0.5) is not None


def test_reset_longer_than_the_window_is_capped_at_the_window():
    clock = FakeClock()
    limits = make(clock, rpm=10)
    now = clock.monotonic()
    limits.observe_headers(RateLimitInfo(limit_requests=10, remaining_requests=0, reset_requests_s=600), now)
    assert limits.when_available(1, now) == now + W


def test_daily_request_headers_go_to_the_daily_dimension():
    clock = FakeClock()
    limits = make(clock, rpm=30, rpd=14_400)  # Groq reports requests per day in its headers
    now = clock.monotonic()
    info = RateLimitInfo(limit_requests=14_400, remaining_requests=14_000, reset_requests_s=10.0)
    limits.observe_headers(info, now)
    report = limits.headroom(now)
    assert report["rpd"]["used"] == 400 and report["rpm"]["used"] == 0
    assert limits.try_acquire(1, now) is not None


# -- settle mode, headroom, catalog ------------------------------------------------------------


def test_a_settling_state_starts_full_for_the_settle_period():
    clock = FakeClock()
    start = clock.monotonic()
    limits = LimitState(Limits(rpm=5, tpm=100, rpd=50), clock=clock, scale=0.02, guard_s=0.0, settle_s=W)
    report = limits.headroom(start)
    assert [report[d]["remaining"] for d in ("rpm", "tpm", "rpd")] == [0, 0, 0]
    assert limits.when_available(1, start) == start + W
    assert limits.try_acquire(1, start + W) is not None


def test_headroom_reports_unlimited_dimensions_as_none():
    clock = FakeClock()
    limits = make(clock, rpm=3)
    limits.try_acquire(7, clock.monotonic())
    report = limits.headroom(clock.monotonic())
    assert report["rpm"] == {"limit": 3, "used": 1, "remaining": 2}
    assert report["tpm"] == {"limit": None, "used": 7, "remaining": None}
    assert report["in_flight"] == {"limit": None, "used": 1, "remaining": None}


def test_for_model_reads_the_catalog_limits():
    spec = ModelSpec("groq", "m", 0.1, 0.1, 8192, rpm=30, tpm=14_400, rpd=14_400, max_in_flight=4)
    limits = LimitState.for_model(spec, clock=FakeClock())
    assert limits.limits == Limits(30, 14_400, 14_400, 4)


def test_guard_extends_every_window():
    clock = FakeClock()
    limits = make(clock, guard_s=0.25, rpm=1)
    now = clock.monotonic()
    limits.try_acquire(1, now)
    assert limits.when_available(1, now) == now + W + 0.25


# -- the log over a long run (compaction) --------------------------------------------------------


def test_long_run_matches_a_naive_count():
    clock = FakeClock()
    limits = make(clock, rpm=7, tpm=400)
    rnd = random.Random(7)
    charged: list[tuple[float, int]] = []  # (time, tokens) of admitted requests
    for _ in range(6_000):
        clock.advance(rnd.choice([0.0, 0.01, 0.05, 0.2]))
        now = clock.monotonic()
        tokens = rnd.randint(0, 120)
        reservation = limits.try_acquire(tokens, now)
        if reservation is not None:
            actual = rnd.randint(0, tokens)
            limits.reconcile(reservation, actual)
            charged.append((now, actual))
        live = [n for t, n in charged if t + W > now]
        assert limits.headroom(now)["rpm"]["used"] == len(live)
        assert limits.headroom(now)["tpm"]["used"] == sum(live)
    assert len(charged) > 2_000
    assert limits._dims[1].log._first_seq > 0  # the log did compact along the way


# -- leases: a slice charged at once, settled to what was used ---------------------------------


def test_a_lease_is_charged_whole_for_its_term_and_settles_to_what_was_used():
    clock = FakeClock()
    limits = make(clock, rpm=10, tpm=1_000)
    now = clock.monotonic()
    lease = limits.try_lease(6, 600, now, hold_s=0.5)
    assert lease is not None and limits.free(now) == (4, 400)
    assert limits.try_lease(5, 100, now, hold_s=0.5) is None  # no more out than the window allows
    limits.settle_lease(lease, 2, 150)
    assert limits.free(now) == (8, 850)  # the unused part is free at once
    assert limits.free(now + W - 0.01) == (8, 850)
    assert limits.free(now + W + 0.5 - 0.01) == (8, 850)  # the used part lives for its term too
    assert limits.free(now + W + 0.5) == (10, 1_000)


def test_an_unreturned_lease_expires_a_window_after_its_term():
    clock = FakeClock()
    limits = make(clock, rpm=3)
    now = clock.monotonic()
    assert limits.try_lease(3, 0, now, hold_s=0.25) is not None
    assert limits.when_available(0, now) == pytest.approx(now + W + 0.25)
    assert limits.free(now + W + 0.25) == (3, None)


def test_nothing_is_free_while_cooled_down_and_bad_leases_are_refused():
    clock = FakeClock()
    limits = make(clock, rpm=3)
    now = clock.monotonic()
    limits.cool_down(now + 1.0)
    assert limits.free(now) == (0, 0) and limits.try_lease(1, 0, now, 0.1) is None
    with pytest.raises(ValueError):
        limits.try_lease(0, 10, now, 0.1)
    lease = limits.try_lease(1, 0, now + 1.0, 0.1)
    with pytest.raises(ValueError):
        limits.settle_lease(lease, -1, 0)
