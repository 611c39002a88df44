"""Stateful property test: the Breaker against a deliberately naive reference model that keeps
the whole closed-period history and a set of currently valid permits."""
from __future__ import annotations

import math

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from providers.breaker import Breaker, BreakerConfig, BreakerOpen, Permit
from providers.clock import FakeClock


class ReferenceBreaker:
    def __init__(self, cfg: BreakerConfig) -> None:
        self.cfg = cfg
        self.state = "closed"
        self.history: list[tuple[float, bool]] = []  # this closed period, (time, failed)
        self.valid: set[int] = set()  # permits whose outcome still counts
        self.probes: dict[int, float] = {}  # probe id -> deadline
        self.trips = 0
        self.open_until = -math.inf
        self.next_id = 0

    def _go(self, state: str) -> None:
        self.state, self.history, self.valid, self.probes = state, [], set(), {}

    def _trip(self, at: float) -> None:
        self.trips += 1
        self.open_until = at + min(self.cfg.max_cooldown_s, self.cfg.base_cooldown_s * 2 ** (self.trips - 1))
        self._go("open")

    def tick(self, now: float) -> None:
        while True:
            if self.state == "open" and now >= self.open_until:
                self._go("half_open")
            elif self.state == "half_open" and self.probes and min(self.probes.values()) <= now:
                self._trip(min(self.probes.values()))
            else:
                return

    def acquire(self, now: float) -> tuple[int | None, float | None]:
        self.tick(now)
        self.next_id += 1
        if self.state == "closed":
            self.valid.add(self.next_id)
            return self.next_id, None
        if self.state == "open":
            return None, self.open_until
        if len(self.probes) < self.cfg.probes:
            self.valid.add(self.next_id)
            self.probes[self.next_id] = now + self.cfg.probe_timeout_s
            return self.next_id, None
        return None, min(self.probes.values())

    def record(self, pid: int, outcome: str, now: float) -> None:
        self.tick(now)
        if pid not in self.valid:
            return
        self.valid.discard(pid)
        if self.state == "half_open":
            del self.probes[pid]
            if outcome == "success":
                self.trips = 0
                self._go("closed")
            elif outcome == "failure":
                self._trip(now)
            return
        if outcome == "neutral":
            return
        self.history.append((now, outcome == "failure"))
        recent = [failed for t, failed in self.history if t + self.cfg.window_s > now]
        streak = 0
        for _, failed in reversed(self.history):
            if not failed:
                break
            streak += 1
        by_rate = len(recent) >= self.cfg.min_calls and sum(recent) >= self.cfg.failure_rate * len(recent)
        if outcome == "failure" and (by_rate or streak >= self.cfg.consecutive_failures):
            self._trip(now)


class BreakerMachine(RuleBasedStateMachine):
    @initialize(probes=st.integers(1, 2), rate=st.sampled_from([0.3, 0.5, 1.0]))
    def setup(self, probes, rate):
        self.cfg = BreakerConfig(window_s=10.0, min_calls=4, failure_rate=rate, consecutive_failures=3,
                                 base_cooldown_s=1.0, max_cooldown_s=8.0, probes=probes, probe_timeout_s=3.0)
        self.clock = FakeClock()
        self.sut = Breaker(self.cfg)
        self.ref = ReferenceBreaker(self.cfg)
        self.permits: list[tuple[Permit, int]] = []

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    @rule(dt=st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 7.5, 20.0]))
    def advance(self, dt):
        self.clock.advance(dt)

    @rule()
    def acquire(self):
        got = self.sut.acquire(self.now)
        pid, until = self.ref.acquire(self.now)
        if pid is None:
            assert isinstance(got, BreakerOpen) and got.until == until and got.state == self.ref.state
        else:
            assert isinstance(got, Permit) and got.probe == (self.ref.state == "half_open")
            self.permits.append((got, pid))

    @precondition(lambda self: self.permits)
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "failure", "neutral"]))
    def report(self, data, outcome):
        permit, pid = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        self.sut.record(permit, outcome, self.now)
        self.ref.record(pid, outcome, self.now)

    @invariant()
    def same_state(self):
        if hasattr(self, "sut"):
            self.ref.tick(self.now)
            assert self.sut.state(self.now) == self.ref.state
            snap = self.sut.snapshot(self.now)
            assert snap["trips"] == self.ref.trips and snap["probes_out"] == len(self.ref.probes)


BreakerMachine.TestCase.settings = settings(
    max_examples=120, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestBreakerMachine = BreakerMachine.TestCase
