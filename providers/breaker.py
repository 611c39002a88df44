"""Circuit breaker per (platform, model). Pure: no Ray, no I/O, no timers; `now` is passed in
(monotonic seconds) and time-driven transitions happen lazily on the next call.

    CLOSED --(failure rate >= threshold over the window after min_calls, or N consecutive
              failures)--> OPEN for a cool-down: base * 2**(trips - 1), capped; `trips`
              counts trips since the breaker last closed.
    OPEN --(cool-down over)--> HALF_OPEN: at most `probes` probe permits out at once, each
              with its own timeout; everyone else is refused at once.
    HALF_OPEN --(a probe succeeds)--> CLOSED (window, streak and trip count cleared)
    HALF_OPEN --(a probe fails, or times out: a failure at its deadline)--> OPEN, longer.

Outcomes (`outcome_for`): success; failure when `ProviderError.breaker_failure` (5xx, 529,
timeouts, connection errors, cut streams); neutral for the rest (4xx, 429, context too long).
A neutral outcome is no evidence about the upstream's health: in CLOSED it is not counted (it
neither fails nor breaks the consecutive-failure streak); in HALF_OPEN it hands the probe
permit back without closing (a front proxy can answer 400/429 while the backends are down), so
the next caller probes instead.

Permits carry the epoch (one per state entered): an outcome reported for a permit of an earlier
epoch is ignored, so a slow call from before a trip can neither close nor re-open the breaker,
and a probe that timed out cannot report later. Report each permit once.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from itertools import count
from typing import Any, Literal

from providers.types import ProviderError, SwitchboardError

State = Literal["closed", "open", "half_open"]
Outcome = Literal["success", "failure", "neutral"]


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    window_s: float = 60.0
    min_calls: int = 10
    failure_rate: float = 0.5
    consecutive_failures: int = 5
    base_cooldown_s: float = 5.0
    max_cooldown_s: float = 300.0
    probes: int = 1
    probe_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.min_calls < 1 or self.consecutive_failures < 1 or self.probes < 1:
            raise ValueError("min_calls, consecutive_failures and probes must be >= 1")
        if not 0 < self.failure_rate <= 1:
            raise ValueError("failure_rate must be in (0, 1]")
        if min(self.window_s, self.base_cooldown_s, self.probe_timeout_s) <= 0:
            raise ValueError("window_s, base_cooldown_s and probe_timeout_s must be > 0")

    def cooldown_s(self, trips: int) -> float:
        """Cool-down after the `trips`-th trip since the breaker last closed (1, 2, ...)."""
        return min(self.max_cooldown_s, self.base_cooldown_s * 2.0 ** min(trips - 1, 64))


@dataclass(frozen=True, slots=True)
class Permit:
    """Leave to make one call. Report its outcome once with `Breaker.record`."""

    id: int
    epoch: int
    probe: bool
    expires_at: float = math.inf  # probes only: unreported by then counts as a failure


class BreakerOpen(SwitchboardError):
    """Refused by the breaker. `until`: when it will let a call through again at the latest
    (OPEN: end of the cool-down; HALF_OPEN: the earliest outstanding probe's deadline)."""

    def __init__(self, until: float, state: State) -> None:
        super().__init__(until, state)  # positional args: pickles across actor hops
        self.until = until
        self.state = state

    def __str__(self) -> str:
        return f"circuit breaker {self.state} until t={self.until:.3f}"


def outcome_for(error: BaseException | None) -> Outcome:
    """How a call's result counts: None = success; the taxonomy decides for ProviderErrors; bare
    timeouts and OS-level connection errors are failures; anything else (a bug on our side, a
    cancellation) is neutral."""
    if error is None:
        return "success"
    if isinstance(error, ProviderError):
        return "failure" if error.breaker_failure else "neutral"
    if isinstance(error, (TimeoutError, OSError)):
        return "failure"
    return "neutral"


class Breaker:
    def __init__(self, config: BreakerConfig | None = None) -> None:
        self.config = config or BreakerConfig()
        self._state: State = "closed"
        self._epoch = 0
        self._ids = count(1)
        self._window: deque[tuple[float, bool]] = deque()  # (time, failed) in CLOSED
        self._window_failures = 0
        self._streak = 0  # consecutive failures in CLOSED
        self._trips = 0  # trips since the breaker last closed
        self._open_until = -math.inf
        self._probes: dict[int, Permit] = {}
        self._opened_total = 0

    @property
    def epoch(self) -> int:
        """The current state's number: outcomes tagged with an older one are ignored."""
        return self._epoch

    def state(self, now: float) -> State:
        self._advance(now)
        return self._state

    def acquire(self, now: float) -> Permit | BreakerOpen:
        self._advance(now)
        if self._state == "closed":
            return Permit(next(self._ids), self._epoch, probe=False)
        if self._state == "open":
            return BreakerOpen(self._open_until, "open")
        if len(self._probes) < self.config.probes:
            permit = Permit(next(self._ids), self._epoch, True, now + self.config.probe_timeout_s)
            self._probes[permit.id] = permit
            return permit
        return BreakerOpen(min(p.expires_at for p in self._probes.values()), "half_open")

    def record(self, permit: Permit, outcome: Outcome, now: float) -> None:
        self._advance(now)
        if permit.epoch != self._epoch:
            return  # granted before the last transition: says nothing about the present
        if self._state == "closed":
            self._record_closed(outcome, now)
        elif self._probes.pop(permit.id, None) is not None:
            if outcome == "success":
                self._close()
            elif outcome == "failure":
                self._trip(now)

    def record_success(self, permit: Permit, now: float) -> None:
        self.record(permit, "success", now)

    def record_failure(self, permit: Permit, now: float) -> None:
        self.record(permit, "failure", now)

    def record_neutral(self, permit: Permit, now: float) -> None:
        self.record(permit, "neutral", now)

    def snapshot(self, now: float) -> dict[str, Any]:
        self._advance(now)
        self._expire_window(now)
        calls = len(self._window)
        return {
            "state": self._state,
            "open_until": self._open_until if self._state == "open" else None,
            "window_calls": calls,
            "window_failures": self._window_failures,
            "failure_rate": self._window_failures / calls if calls else 0.0,
            "consecutive_failures": self._streak,
            "trips": self._trips,
            "opened_total": self._opened_total,
            "probes_out": len(self._probes),
        }

    # -- transitions -------------------------------------------------------------------------

    def _record_closed(self, outcome: Outcome, now: float) -> None:
        if outcome == "neutral":
            return
        failed = outcome == "failure"
        self._expire_window(now)
        self._window.append((now, failed))
        self._window_failures += failed
        self._streak = self._streak + 1 if failed else 0
        cfg = self.config
        calls = len(self._window)
        rate_tripped = calls >= cfg.min_calls and self._window_failures >= cfg.failure_rate * calls
        if failed and (rate_tripped or self._streak >= cfg.consecutive_failures):
            self._trip(now)

    def _advance(self, now: float) -> None:
        """Apply the transitions that time alone causes, in order, up to `now`."""
        while True:
            if self._state == "open" and now >= self._open_until:
                self._enter("half_open")
            elif self._state == "half_open" and self._probes:
                first = min(p.expires_at for p in self._probes.values())
                if first > now:
                    return
                self._trip(first)  # the silent probe counts as a failure at its deadline
            else:
                return

    def _trip(self, at: float) -> None:
        self._trips += 1
        self._opened_total += 1
        self._open_until = at + self.config.cooldown_s(self._trips)
        self._enter("open")

    def _close(self) -> None:
        self._trips = 0
        self._enter("closed")

    def _enter(self, state: State) -> None:
        self._state = state
        self._epoch += 1
        self._probes.clear()
        self._window.clear()
        self._window_failures = 0
        self._streak = 0

    def _expire_window(self, now: float) -> None:
        horizon = self.config.window_s
        while self._window and self._window[0][0] + horizon <= now:
            self._window_failures -= self._window.popleft()[1]
