"""Admission by lease, the owner's side: a ProviderActor lends each replica a slice of a model's
rate limits (requests and tokens) for a short term, and takes it back with what was used.
Pure logic over the model's `ModelGuard` (its LimitState and Breaker) and the injected clock.

Guarantee (on top of providers/limits.py's). A slice is charged in every dimension when it is
granted, with `hold_s` = its term added to its life, so the live total — used plus outstanding —
never passes the limit: `used + outstanding <= limit` in every dimension, at every moment. The
holder admits calls only before the term ends (its own clock starts when it asked, before the
grant), so every call under a slice reaches the upstream before `granted + term + guard` and the
upstream counts it for one window from then: the slice's charge is live for all of that. When
the slice comes back, its charges become what was used (requests started, tokens reserved by
calls still running, real tokens of finished ones): the unused part is free at once. A slice
that never comes back (its holder died) counts as wholly used and expires with its window.

Breakers: the actor's breaker is the one that counts. A grant carries its state and epoch; a
slice is lent only while it is closed. Holders report outcomes in order, tagged with the epoch
they were admitted under (an outcome from an earlier epoch is ignored, as for permits). While it
is half-open, no slice is lent: holders ask the actor for single admissions, and the breaker
gives its probe permit to exactly one caller cluster-wide.
"""
from __future__ import annotations

import math
import os
import random
import socket
import uuid
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Iterator, Literal

from providers.breaker import Outcome, Permit
from providers.clock import Clock
from providers.guard import ModelGuard
from providers.limits import Reservation
from providers.types import ProviderError
from providers.wire.ratelimit import RateLimitInfo

#: a holder counts as active (for fair shares) this many terms after its last ask
ACTIVE_TERMS = 3.0
#: a loan not back after this many terms is forgotten (its holder died): its charges stay and
#: expire with their window, as for a slice wholly used
FORGET_TERMS = 20.0


@dataclass(frozen=True, slots=True)
class LeaseAsk:
    """What a holder wants for its next term: `requests` calls and `tokens` tokens in all;
    less than one call of `min_tokens` is no use to it."""

    requests: int
    tokens: int
    min_tokens: int


@dataclass(frozen=True, slots=True)
class ModelReport:
    """Everything one holder tells about one model in one renewal."""

    model: str
    returned: tuple[tuple[int, int, int], ...] = ()  # (lease id, used requests, used tokens)
    outcomes: tuple[tuple[int, Outcome], ...] = ()  # (breaker epoch, outcome), in order
    headers: RateLimitInfo | None = None  # the latest upstream rate-limit headers
    cool_for_s: float | None = None  # an upstream 429's Retry-After
    ask: LeaseAsk | None = None


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer for one model. `lease_id == 0`: nothing lent (see `retry_after_s`, `breaker`)."""

    model: str
    lease_id: int = 0
    requests: int = 0
    tokens: int = 0
    term_s: float = 0.0
    breaker: Literal["closed", "open", "half_open"] = "closed"
    epoch: int = 0
    retry_after_s: float | None = None
    exclusive: bool = False  # the model needs per-call admission (in-flight limit)


@dataclass(frozen=True, slots=True)
class Renewal:
    """One holder's renewal for one platform: its reports, a key failure it saw (authentication
    or credit: the key is disabled cluster-wide), and its call counters since the last one."""

    holder: str
    reports: tuple[ModelReport, ...] = ()
    disabled: ProviderError | None = None
    counters: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class RenewalAnswer:
    grants: tuple[Grant, ...]
    disabled: ProviderError | None  # the platform's key state, as the owner knows it


def holder_name() -> str:
    """Who holds slices: this host and process, and a nonce (a restarted process is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_ids() -> Iterator[int]:
    """Lease ids unique across owner restarts (a holder may return a slice of a dead owner)."""
    return count(random.randrange(1, 1 << 40) << 20)


@dataclass(slots=True)
class _Loan:
    holder: str
    reservation: Reservation
    requests: int
    tokens: int
    granted_at: float


@dataclass
class LeaseDesk:
    """The slices of one model out on loan, and the arithmetic of lending them."""

    guard: ModelGuard
    clock: Clock
    term_s: float = 1.0
    loans: dict[int, _Loan] = field(default_factory=dict)
    _active: dict[str, float] = field(default_factory=dict)  # holder -> last ask (monotonic)
    _ids: Iterator[int] = field(default_factory=lease_ids)

    def outstanding(self, now: float) -> tuple[int, int]:
        """Requests and tokens lent whose term has not ended (usable by their holders)."""
        live = [l for l in self.loans.values() if l.granted_at + self.term_s > now]
        return sum(l.requests for l in live), sum(l.tokens for l in live)

    def holders(self, now: float) -> list[str]:
        """Who has slices out: not yet returned, nor forgotten (a holder silent for
        FORGET_TERMS terms is taken for dead; its charges expire with their window)."""
        horizon = now - FORGET_TERMS * self.term_s
        return sorted({loan.holder for loan in self.loans.values() if loan.granted_at >= horizon})

    def apply(self, holder: str, report: ModelReport) -> Grant:
        """Take back, learn, then lend: the order a renewal is processed in."""
        now = self.clock.monotonic()
        for returned in report.returned:
            self.take_back(*returned)
        self._forget_lost(now)
        self._learn(report, now)
        if report.ask is None:
            return self._state(now)
        return self.lend(holder, report.ask, now)

    def take_back(self, lease_id: int, used_requests: int, used_tokens: int) -> None:
        loan = self.loans.pop(lease_id, None)
        if loan is None:
            return  # already back (a retried renewal), or never ours
        used_requests = min(max(used_requests, 0), loan.requests)  # never more calls than lent
        self.guard.limits.settle_lease(loan.reservation, used_requests, max(used_tokens, 0))

    def lend(self, holder: str, ask: LeaseAsk, now: float) -> Grant:
        self._active[holder] = now  # asking is demand, granted or not
        state = self._state(now)
        if state.breaker != "closed" or self.guard.spec.max_in_flight is not None:
            return state
        limits = self.guard.limits
        free_requests, free_tokens = limits.free(now)
        share = self._fair_share(holder, now)
        requests = _smallest(ask.requests, free_requests, share)
        tokens = _smallest(ask.tokens, free_tokens)
        if requests >= 1 and tokens >= ask.min_tokens:
            requests = min(requests, max(1, tokens // max(ask.min_tokens, 1)))  # no request without its tokens
            reservation = limits.try_lease(requests, tokens, now, self.term_s)
            if reservation is not None:
                lease_id = next(self._ids)
                self.loans[lease_id] = _Loan(holder, reservation, requests, tokens, now)
                return Grant(self.guard.spec.id, lease_id, requests, tokens, self.term_s, "closed", state.epoch)
        until = limits.when_available(ask.min_tokens, now)
        wait = None if math.isinf(until) else max(until - now, 0.0)
        return Grant(self.guard.spec.id, 0, 0, 0, 0.0, "closed", state.epoch, wait)

    def _state(self, now: float) -> Grant:
        breaker = self.guard.breaker
        snapshot = breaker.snapshot(now)
        wait = None
        if snapshot["state"] == "open":
            wait = max(snapshot["open_until"] - now, 0.0)
        return Grant(self.guard.spec.id, breaker=snapshot["state"], epoch=breaker.epoch, retry_after_s=wait,
                     exclusive=self.guard.spec.max_in_flight is not None)

    def _learn(self, report: ModelReport, now: float) -> None:
        limits, breaker = self.guard.limits, self.guard.breaker
        if report.headers is not None:
            limits.observe_headers(report.headers, now)
        if report.cool_for_s:
            limits.cool_down(now + report.cool_for_s)
        for epoch, outcome in report.outcomes:
            breaker.record(Permit(0, epoch, probe=False), outcome, now)

    def _forget_lost(self, now: float) -> None:
        forget_lost(self.loans, now, self.term_s)

    def _fair_share(self, holder: str, now: float) -> int | None:
        """With several holders active, none gets more than limit / holders per term."""
        holders = active_holders(self._active, holder, now, self.term_s)
        rpm = self.guard.limits.headroom(now)["rpm"]["limit"]
        if holders <= 1 or rpm is None:
            return None
        return max(1, int(rpm) // holders)


def forget_lost(loans: dict[int, Any], now: float, term_s: float) -> None:
    """Drop the loans (anything with `granted_at`) not back after FORGET_TERMS terms: their
    holder is taken for dead; their charges stay and expire with their window."""
    horizon = now - FORGET_TERMS * term_s
    for lease_id in [i for i, loan in loans.items() if loan.granted_at < horizon]:
        del loans[lease_id]


def active_holders(active: dict[str, float], holder: str, now: float, term_s: float) -> int:
    """Note `holder`'s ask in `active` (holder -> last ask) and count the holders that asked
    within ACTIVE_TERMS terms (it among them)."""
    active[holder] = now
    horizon = now - ACTIVE_TERMS * term_s
    for name in [n for n, at in active.items() if at < horizon]:
        del active[name]
    return len(active)


def _smallest(*values: int | None) -> int:
    finite = [v for v in values if v is not None]
    return min(finite) if finite else 0
