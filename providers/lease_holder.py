"""Admission by lease, the holder's side (a Serve replica): each model's `LeasedGuard` admits
calls locally against the slice its platform's ProviderActor lent it (providers/leases.py), and
one `Renewer` per platform talks to that actor in batches: it returns slices with what was
used, reports breaker outcomes, rate-limit headers and 429 cool-downs, and asks for the next
slices. Pure asyncio over an injected clock and an injected `send` (the actor call); no Ray.

A `LeasedGuard` has the interface of `ModelGuard` (admit / succeeded / failed / abandoned), so
the one call loop (providers/caller.py) runs on either. Where a slice cannot be lent (the
breaker is half-open, whose probe is one permit cluster-wide, or the model has an in-flight
limit) it asks the actor for that one call (`RemoteDesk`). A holder that cannot renew refuses
(`LeaseUnavailableRefusal`, the router falls back) rather than guess at the limits.

A slice is used only before `asked_at + term`, on the holder's clock, `asked_at` taken before
the renewal was sent: so never after the owner's `granted_at + term`, which its charge covers.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Protocol

from providers.breaker import Outcome, outcome_for
from providers.catalog import ModelSpec
from providers.clock import Clock
from providers.leases import Grant, LeaseAsk, ModelReport, Renewal, RenewalAnswer
from providers.types import (
    BreakerOpenRefusal, LeaseUnavailableRefusal, ProviderError, RateLimitedError, RateLimitRefusal, Refusal,
)
from providers.wire.ratelimit import RateLimitInfo

#: a guard keeps asking for slices this many terms after its last call
DEMAND_TERMS = 2.0
#: renew early when less than this share of the slice (or of its term) is left
RENEW_AT = 0.3
#: a slice covers this many terms of the recent rate
ASK_TERMS = 2.0
#: after the owner did not answer, refuse (without asking again) for this long
UNREACHABLE_S = 0.5
#: renewals one admission may wait for before it is refused
MAX_ROUNDS = 4
MIN_ASK = 2


class RemoteDesk(Protocol):
    """Single admissions from the owner, for what cannot be lent."""

    async def admit(self, model: str, tokens: int, deadline_wall: float, wait: bool) -> int | Refusal: ...

    async def settle(self, admission_id: int, outcome: str, used_tokens: int | None,
                     headers: RateLimitInfo | None, cool_for_s: float | None) -> None: ...


@dataclass(slots=True)
class LocalLease:
    id: int
    requests_left: int
    tokens_left: int
    expires_at: float  # monotonic: asked_at + term
    epoch: int
    term_s: float
    used_requests: int = 0
    used_tokens: int = 0
    returned: bool = False

    def fits(self, tokens: int, now: float) -> bool:
        return not self.returned and now < self.expires_at and self.requests_left >= 1 and self.tokens_left >= tokens


@dataclass(frozen=True, slots=True)
class LocalTicket:
    lease: LocalLease
    tokens: int


@dataclass(frozen=True, slots=True)
class RemoteTicket:
    admission_id: int
    tokens: int


@dataclass(slots=True)
class _Pending:
    """What the next renewal tells the owner about one model."""

    returned: list[tuple[int, int, int]] = field(default_factory=list)
    outcomes: list[tuple[int, Outcome]] = field(default_factory=list)
    headers: RateLimitInfo | None = None
    cool_for_s: float | None = None
    late_tokens: int = 0  # tokens used beyond what an already returned slice reported

    def __bool__(self) -> bool:
        return bool(self.returned or self.outcomes or self.headers is not None or self.cool_for_s)


class LeasedGuard:
    def __init__(self, spec: ModelSpec, renewer: "Renewer", clock: Clock) -> None:
        self.spec = spec
        self.renewer = renewer
        self.clock = clock
        self.lease: LocalLease | None = None
        self.breaker = "closed"  # as of the last answer
        self.exclusive = False  # per-call admission by the owner (in-flight limit)
        self.stale = False  # a remote call finished: learn the breaker's state again
        self.open_until = -math.inf  # monotonic
        self.refused_until = -math.inf  # the owner had no capacity before then
        self.unreachable_until = -math.inf
        self.last_call = -math.inf
        self.rate = 0.0  # calls per second, smoothed
        self.want_tokens = 0  # the largest call lately
        self.waiting = 0  # admissions waiting for a renewal
        self.pending = _Pending()
        self._asked = False

    # -- admission ---------------------------------------------------------------------------

    async def admit(self, tokens: int, deadline_wall: float, wait: bool = False) -> LocalTicket | RemoteTicket | Refusal:
        clock, rounds = self.clock, 0
        self._note_demand(tokens, clock.monotonic())
        while True:
            now = clock.monotonic()
            ticket = self._take(tokens, now)
            if ticket is not None:
                return ticket
            if self._remote_now(now):
                return await self._admit_remote(tokens, deadline_wall, wait)
            refusal = self._known_refusal(now)
            if refusal is None and rounds >= MAX_ROUNDS:
                refusal = self._limit_refusal("no lease left", self.renewer.term_hint_s)
            if refusal is not None:
                wait_s = refusal.retry_after_s
                if not wait or wait_s is None or clock.time() + wait_s >= deadline_wall:
                    return refusal
                await clock.sleep(max(wait_s, 0.001))
                rounds = 0
                continue
            rounds += 1
            self.waiting += 1
            try:
                await self.renewer.sync()
            finally:
                self.waiting -= 1

    def _take(self, tokens: int, now: float) -> LocalTicket | None:
        lease = self.lease
        if lease is None or self.breaker != "closed" or not lease.fits(tokens, now):
            return None
        lease.requests_left -= 1
        lease.tokens_left -= tokens
        lease.used_requests += 1
        lease.used_tokens += tokens
        if self._running_low(lease, now):
            self.renewer.soon()
        return LocalTicket(lease, tokens)

    def _running_low(self, lease: LocalLease, now: float) -> bool:
        return (lease.requests_left < max(1.0, self.rate * lease.term_s * RENEW_AT)
                or lease.tokens_left < max(self.want_tokens, 1)
                or lease.expires_at - now < lease.term_s * RENEW_AT)

    def _remote_now(self, now: float) -> bool:
        return self.exclusive or self.breaker == "half_open" or (self.breaker == "open" and now >= self.open_until)

    def _known_refusal(self, now: float) -> Refusal | None:
        """A refusal known without asking the owner, or None (ask)."""
        if now < self.unreachable_until:
            return LeaseUnavailableRefusal(f"the {self.spec.platform} provider actor did not answer",
                                           platform=self.spec.platform, model=self.spec.id,
                                           retry_after_s=self.unreachable_until - now)
        if self.breaker == "open" and now < self.open_until:
            return BreakerOpenRefusal("circuit breaker open", platform=self.spec.platform, model=self.spec.id,
                                      retry_after_s=self.open_until - now)
        if now < self.refused_until:
            return self._limit_refusal("reached", self.refused_until - now)
        return None

    def _limit_refusal(self, what: str, retry_after_s: float | None) -> RateLimitRefusal:
        return RateLimitRefusal(f"rate limit {what}", platform=self.spec.platform, model=self.spec.id,
                                retry_after_s=retry_after_s)

    async def _admit_remote(self, tokens: int, deadline_wall: float, wait: bool) -> RemoteTicket | Refusal:
        try:
            result = await self.renewer.remote.admit(self.spec.id, tokens, deadline_wall, wait)
        except Exception:  # noqa: BLE001 - the owner is unreachable
            self.unreachable_until = self.clock.monotonic() + UNREACHABLE_S
            return self._known_refusal(self.clock.monotonic()) or self._limit_refusal("unknown", None)
        if isinstance(result, Refusal):
            if isinstance(result, BreakerOpenRefusal):  # half-open with its probe out, or open again
                self.stale = True
                self.renewer.soon()
            return result
        return RemoteTicket(result, tokens)

    def _note_demand(self, tokens: int, now: float) -> None:
        gap = now - self.last_call
        if math.isfinite(gap):
            self.rate = 0.8 * self.rate + 0.2 * min(1.0 / max(gap, 1e-4), 1e4)
        self.last_call = now
        self.want_tokens = max(tokens, int(self.want_tokens * 0.99))

    # -- outcomes ----------------------------------------------------------------------------

    def succeeded(self, ticket: LocalTicket | RemoteTicket, used_tokens: int, info: RateLimitInfo | None) -> None:
        self._finish(ticket, "success", used_tokens, info, None)

    def failed(self, ticket: LocalTicket | RemoteTicket, error: ProviderError, used_tokens: int | None = None) -> None:
        cool = error.retry_after_s if isinstance(error, RateLimitedError) and error.retry_after_s else None
        self._finish(ticket, outcome_for(error), used_tokens, None, cool)

    def abandoned(self, ticket: LocalTicket | RemoteTicket) -> None:
        """Admitted, never sent: the call goes back into its slice."""
        if isinstance(ticket, RemoteTicket):
            self._settle_remote(ticket, "abandoned", None, None, None)
            return
        lease = ticket.lease
        if not lease.returned:
            lease.requests_left += 1
            lease.tokens_left += ticket.tokens
            lease.used_requests -= 1
            lease.used_tokens -= ticket.tokens

    def _finish(self, ticket: LocalTicket | RemoteTicket, outcome: Outcome, used_tokens: int | None,
                info: RateLimitInfo | None, cool_for_s: float | None) -> None:
        if isinstance(ticket, RemoteTicket):
            self._settle_remote(ticket, outcome, used_tokens, info, cool_for_s)
            return
        lease, pending = ticket.lease, self.pending
        if used_tokens is not None and used_tokens != ticket.tokens:
            delta = used_tokens - ticket.tokens
            if not lease.returned:
                lease.used_tokens += delta
                lease.tokens_left -= delta
            elif delta > 0:
                pending.late_tokens += delta
        if info is not None:
            pending.headers = info
        if outcome != "neutral":
            pending.outcomes.append((lease.epoch, outcome))
        if cool_for_s:
            pending.cool_for_s = max(pending.cool_for_s or 0.0, cool_for_s)
            self.refused_until = max(self.refused_until, self.clock.monotonic() + cool_for_s)
            self._give_back()
        if outcome == "failure" or cool_for_s:
            self.renewer.soon()

    def _settle_remote(self, ticket: RemoteTicket, outcome: str, used_tokens: int | None,
                       info: RateLimitInfo | None, cool_for_s: float | None) -> None:
        async def settle() -> None:
            try:
                await self.renewer.remote.settle(ticket.admission_id, outcome, used_tokens, info, cool_for_s)
            finally:
                self.stale = True
                self.renewer.soon()

        self.renewer.background(settle())

    # -- renewal -----------------------------------------------------------------------------

    def _give_back(self) -> None:
        lease = self.lease
        if lease is not None and not lease.returned:
            lease.returned = True
            self.pending.returned.append(
                (lease.id, lease.used_requests, lease.used_tokens + self.pending.late_tokens))
            self.pending.late_tokens = 0
        self.lease = None

    def active(self, now: float) -> bool:
        return now - self.last_call < DEMAND_TERMS * self.renewer.term_hint_s

    def due(self, now: float) -> bool:
        """Worth a renewal now: something to report, a slice to return or running low."""
        lease = self.lease
        if self.pending or self.stale:
            return True
        if lease is None:
            return False
        return not self.active(now) or self._running_low(lease, now) or now >= lease.expires_at

    def report(self, now: float) -> ModelReport | None:
        """What to tell the owner now (taken: it is not told twice), or None."""
        lease = self.lease
        if lease is not None and (not self.active(now) or self._running_low(lease, now) or now >= lease.expires_at):
            self._give_back()  # a fresh slice follows if calls keep coming
        ask = None
        if self.active(now) and self.lease is None and not self.exclusive and now >= self.refused_until \
                and not (self.breaker == "open" and now < self.open_until):
            one = max(self.want_tokens, 1)
            requests = max(MIN_ASK, math.ceil(ASK_TERMS * self.rate * self.renewer.term_hint_s), self.waiting + 1)
            ask = LeaseAsk(requests, requests * one, one)
        self._asked = ask is not None
        if not (self.pending or self.stale or ask is not None):
            return None
        p = self.pending
        report = ModelReport(self.spec.id, tuple(p.returned), tuple(p.outcomes), p.headers, p.cool_for_s, ask)
        self.pending = _Pending(late_tokens=p.late_tokens)
        self.stale = False
        return report

    def apply(self, grant: Grant, asked_at: float) -> None:
        now = self.clock.monotonic()
        self.unreachable_until = -math.inf
        self.breaker, self.exclusive = grant.breaker, grant.exclusive
        if grant.breaker != "closed":
            self._give_back()
            if grant.breaker == "open":
                self.open_until = now + (grant.retry_after_s or 0.0)
        if grant.lease_id:
            self._give_back()
            self.lease = LocalLease(grant.lease_id, grant.requests, grant.tokens, asked_at + grant.term_s,
                                    grant.epoch, grant.term_s)
            self.refused_until = -math.inf
        elif self._asked and grant.breaker == "closed" and not grant.exclusive:
            wait = self.renewer.term_hint_s if grant.retry_after_s is None else grant.retry_after_s
            self.refused_until = now + wait
        self._asked = False

    def restore(self, report: ModelReport) -> None:
        """A report that did not reach the owner goes out with the next one."""
        p = self.pending
        p.returned[:0] = report.returned
        p.outcomes[:0] = report.outcomes
        p.headers = p.headers or report.headers
        if report.cool_for_s:
            p.cool_for_s = max(p.cool_for_s or 0.0, report.cool_for_s)

    def unreachable(self, now: float) -> None:
        self.unreachable_until = now + UNREACHABLE_S
        self._asked = False


Send = Callable[[Renewal], Awaitable[RenewalAnswer]]


class Renewer:
    """One platform's renewals for one holder: at most one in flight; callers that arrive
    meanwhile join the next. `tick()` (every half term, from a background task) returns what
    idles and renews what runs low. Also carries the key's state both ways and the counters."""

    def __init__(self, holder: str, send: Send, remote: RemoteDesk, clock: Clock, *, term_hint_s: float = 1.0,
                 on_disabled: Callable[[ProviderError | None], None] | None = None,
                 counters: Callable[[], dict[str, int]] | None = None,
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self.holder = holder
        self._send = send
        self.remote = remote
        self.clock = clock
        self.term_hint_s = term_hint_s
        self.guards: dict[str, LeasedGuard] = {}
        self.disabled: ProviderError | None = None  # as of the last answer
        self._report_disabled: ProviderError | None = None
        self._on_disabled = on_disabled
        self._counters = counters
        self._counters_sent: dict[str, int] = {}
        self._on_error = on_error
        self._running: asyncio.Future | None = None
        self._next: asyncio.Future | None = None
        self._tasks: set[asyncio.Task] = set()

    def guard(self, spec: ModelSpec) -> LeasedGuard:
        guard = self.guards.get(spec.id)
        if guard is None:
            guard = self.guards[spec.id] = LeasedGuard(spec, self, self.clock)
        return guard

    def report_disabled(self, err: ProviderError) -> None:
        self._report_disabled = err
        self.disabled = err
        self.soon()

    async def sync(self) -> None:
        """Return once a renewal that started after this call has been answered (or failed)."""
        await asyncio.shield(self._queue())

    def soon(self) -> None:
        """Renew in the background (coalesced with a renewal already queued)."""
        self._queue()

    def _queue(self) -> asyncio.Future:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
            self.background(self._round(self._next))
        return self._next

    def background(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def tick(self) -> None:
        now = self.clock.monotonic()
        if self.disabled is not None or any(g.due(now) for g in self.guards.values()):
            await self.sync()

    async def _round(self, done: asyncio.Future) -> None:
        while self._running is not None:
            await asyncio.shield(self._running)
        self._running = done
        if self._next is done:
            self._next = None
        try:
            await self._exchange()
        finally:
            self._running = None
            if not done.done():
                done.set_result(None)

    async def _exchange(self) -> None:
        asked_at = self.clock.monotonic()
        reports = tuple(r for r in (g.report(asked_at) for g in self.guards.values()) if r is not None)
        sent_before = dict(self._counters_sent)
        counters = self._counter_deltas()
        disabled, self._report_disabled = self._report_disabled, None
        if not reports and disabled is None and not counters and self.disabled is None:
            return
        try:
            answer = await self._send(Renewal(self.holder, reports, disabled, counters))
        except Exception as exc:  # noqa: BLE001 - the owner is unreachable: refuse a moment
            if self._on_error is not None:
                self._on_error(exc)
            now = self.clock.monotonic()
            for g in self.guards.values():
                g.unreachable(now)
            for report in reports:  # tell it all again next time
                self.guards[report.model].restore(report)
            self._counters_sent = sent_before
            self._report_disabled = self._report_disabled or disabled
            return
        for grant in answer.grants:
            guard = self.guards.get(grant.model)
            if guard is not None:
                guard.apply(grant, asked_at)
        if (answer.disabled is None) != (self.disabled is None):
            self.disabled = answer.disabled
            if self._on_disabled is not None:
                self._on_disabled(answer.disabled)

    def _counter_deltas(self) -> tuple[tuple[str, int], ...]:
        if self._counters is None:
            return ()
        now = self._counters()
        deltas = tuple((k, v - self._counters_sent.get(k, 0)) for k, v in now.items() if v != self._counters_sent.get(k, 0))
        self._counters_sent = dict(now)
        return deltas

    async def close(self) -> None:
        """Return every slice (best effort): another holder may use it at once."""
        for g in self.guards.values():
            g.last_call = -math.inf
        try:
            await asyncio.wait_for(self.sync(), 2.0)
        except Exception:  # noqa: BLE001 - the owner is gone: the slices expire with their window
            pass
        for task in list(self._tasks):
            task.cancel()
