"""Stateful property tests of LimitState against an independent brute-force reference that
keeps the whole history: same admission decisions, exact `when_available`, usage counters equal
to the reconciled amounts, and the charged amount of every window within every limit."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from providers.clock import FakeClock
from providers.limits import Limits, LimitState

SCALE = 0.02
GUARD = 0.05
HORIZON = {"rpm": 60.0 * SCALE + GUARD, "tpm": 60.0 * SCALE + GUARD, "rpd": 86_400.0 * SCALE + GUARD}
DIMS = ("rpm", "tpm", "rpd")


@dataclass
class Entry:
    t: float
    amounts: dict[str, int]
    expiry: dict[str, float]
    real: bool  # False: the settle charge a restarted state starts with
    late: frozenset[str] = frozenset()  # dims whose charge had lapsed before the call finished


class Reference:
    """Admission by definition: every live amount (charged less than a horizon ago), summed."""

    def __init__(self, limits: Limits, start: float, settle_s: float) -> None:
        self.limits = {"rpm": limits.rpm, "tpm": limits.tpm, "rpd": limits.rpd}
        self.cap = limits.max_in_flight
        self.entries: list[Entry] = []
        self.open = 0
        self.cooled = -math.inf
        if settle_s:
            amounts = {d: self.limits[d] or 0 for d in DIMS}
            expiry = {d: start + min(settle_s, HORIZON[d]) for d in DIMS}
            self.entries.append(Entry(start, amounts, expiry, real=False))

    def live(self, dim: str, now: float) -> int:
        return sum(e.amounts[dim] for e in self.entries if e.expiry[dim] > now)

    def settle(self, entry: Entry, now: float) -> None:
        """A finished call counts for a full horizon from when it finished (the upstream saw it
        at some moment between admission and answer)."""
        self.open -= 1
        entry.late = frozenset(d for d in DIMS if entry.amounts[d] and now >= entry.expiry[d])
        for dim in DIMS:
            if entry.amounts[dim]:
                entry.expiry[dim] = max(entry.expiry[dim], now + HORIZON[dim])

    def live_late(self, dim: str, now: float) -> int:
        """Charges revived by a call that finished after its charge had lapsed (in flight for
        longer than a window): counted again, so `used` may pass the limit by these."""
        return sum(e.amounts[dim] for e in self.entries if dim in e.late and e.expiry[dim] > now)

    def admits(self, tokens: int, now: float) -> bool:
        if now < self.cooled or (self.cap is not None and self.open >= self.cap):
            return False
        for dim, amount in zip(DIMS, (1, tokens, 1)):
            limit = self.limits[dim]
            if limit is not None and self.live(dim, now) + amount > limit:
                return False
        return True

    def earliest(self, tokens: int, now: float) -> float:
        if self.cap is not None and self.open >= self.cap:
            return math.inf
        moments = {now, self.cooled} | {e.expiry[d] for e in self.entries for d in DIMS}
        for moment in sorted(m for m in moments if m >= now):
            if self.admits(tokens, moment):
                return moment
        return math.inf

    def next_expiry(self, now: float) -> float | None:
        later = [e.expiry[d] for e in self.entries for d in DIMS if e.expiry[d] > now]
        return min(later, default=None)

    def check_windows_ending_at(self, end: Entry) -> None:
        """Every window of a horizon's length ending at `end` holds at most the limit."""
        real = [e for e in self.entries if e.real]
        for dim in DIMS:
            limit = self.limits[dim]
            if limit is None:
                continue
            total = sum(e.amounts[dim] for e in real if e.t <= end.t and e.t + HORIZON[dim] > end.t)
            assert total <= limit, (dim, total, limit)


class LimitsMachine(RuleBasedStateMachine):
    @initialize(
        rpm=st.integers(1, 5),
        tpm=st.integers(5, 60),
        rpd=st.one_of(st.none(), st.integers(2, 12)),
        cap=st.one_of(st.none(), st.integers(1, 3)),
        settle=st.booleans(),
    )
    def setup(self, rpm, tpm, rpd, cap, settle):
        self.clock = FakeClock()
        limits = Limits(rpm=rpm, tpm=tpm, rpd=rpd, max_in_flight=cap)
        settle_s = HORIZON["rpm"] if settle else 0.0
        self.sut = LimitState(limits, clock=self.clock, scale=SCALE, guard_s=GUARD, settle_s=settle_s)
        self.ref = Reference(limits, self.clock.monotonic(), settle_s)
        self.open: list[tuple] = []

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @rule(tokens=st.integers(0, 70))
    def try_acquire(self, tokens):
        expected = self.ref.admits(tokens, self.now)
        got = self.sut.try_acquire(tokens, self.now)
        assert (got is not None) == expected
        if got is not None:
            entry = Entry(self.now, {"rpm": 1, "tpm": tokens, "rpd": 1},
                          {d: self.now + HORIZON[d] for d in DIMS}, real=True)
            self.ref.entries.append(entry)
            self.ref.open += 1
            self.open.append((got, entry))
            self.ref.check_windows_ending_at(entry)

    @rule(tokens=st.integers(0, 70))
    def when_available_is_exact(self, tokens):
        at = self.sut.when_available(tokens, self.now)
        assert at == self.ref.earliest(tokens, self.now)
        if math.isfinite(at):
            assert copy.deepcopy(self.sut).try_acquire(tokens, at) is not None
            if at > self.now:
                just_before = math.nextafter(at, -math.inf)
                assert copy.deepcopy(self.sut).try_acquire(tokens, just_before) is None

    @rule(dt=st.sampled_from([0.0, 0.01, 0.3, 0.6, 1.25, 40.0, 900.0]))
    def advance(self, dt):
        self.clock.advance(dt)

    @precondition(lambda self: self.ref.next_expiry(self.now) is not None)
    @rule()
    def advance_to_next_expiry(self):
        self.clock.advance(self.ref.next_expiry(self.now) - self.now)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def reconcile(self, data):
        reservation, entry = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        actual = data.draw(st.integers(0, reservation.tokens))
        self.sut.reconcile(reservation, actual)
        entry.amounts["tpm"] = actual
        self.ref.settle(entry, self.now)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def release(self, data):
        reservation, entry = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        self.sut.release(reservation)
        self.ref.settle(entry, self.now)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def cancel(self, data):
        reservation, entry = self.open.pop(data.draw(st.integers(0, len(self.open) - 1)))
        self.sut.cancel(reservation)
        entry.amounts = {d: 0 for d in DIMS}
        self.ref.open -= 1

    @rule(dt=st.sampled_from([0.1, 0.5, 2.0]))
    def cool_down(self, dt):
        self.sut.cool_down(self.now + dt)
        self.ref.cooled = max(self.ref.cooled, self.now + dt)

    @invariant()
    def counters_equal_reconciled_usage(self):
        if not hasattr(self, "sut"):
            return
        report = self.sut.headroom(self.now)
        for dim in DIMS:
            assert report[dim]["used"] == self.ref.live(dim, self.now)
            limit = self.ref.limits[dim]
            if limit is not None:
                # what admissions reserved never exceeds the limit; only a late finish adds to it
                assert report[dim]["used"] - self.ref.live_late(dim, self.now) <= limit
                assert report[dim]["remaining"] == max(0, limit - report[dim]["used"])
        assert report["in_flight"]["used"] == self.ref.open == self.sut.in_flight

    def teardown(self):
        for entry in getattr(self, "ref", Reference(Limits(), 0.0, 0.0)).entries:
            if entry.real:
                self.ref.check_windows_ending_at(entry)  # the whole history, once more


LimitsMachine.TestCase.settings = settings(
    max_examples=70,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLimitsMachine = LimitsMachine.TestCase
