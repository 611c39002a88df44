"""Per-(platform, model) rate limits: requests/min, tokens/min, requests/day and in-flight calls,
checked and charged together (all or nothing). Pure: no Ray, no I/O; `now` is passed in
(monotonic seconds) and `acquire` waits on the injected clock.

Guarantee. Every dimension keeps an exact sliding log of what it charged (one entry per
reservation; the log's amounts are what `reconcile` left). An entry charged at `t` counts until
`t + W + guard` (W = 60 s or 86 400 s times `scale`), and a request is admitted only if every
dimension's live total plus its amount stays within the limit. Hence, for every dimension:

    the amount charged in ANY half-open window (s - W - guard, s] <= limit

(proof: take the last entry admitted inside such a window; every other entry of the window was
live when it was admitted, so its admission check covered them all). Refunds keep this: they only
lower amounts. A call that used MORE tokens than it reserved is charged its real usage at the
reservation time (that is the truth the upstream saw), so the bound holds whenever usage <=
reservation, which is the case when the reservation is the prompt estimate (high side, see
providers/tokens.py) plus max_tokens. `guard_s` absorbs the delay between our admission and the
upstream's own count for calls still in flight; a finished call (reconcile/release) is
re-dated to expire a full window after it finished, because the upstream counted it at some
moment between our admission and its answer. So upstream windows stay within the limit whatever
the delay between admission and arrival.

Composition in a ProviderActor (one reservation per upstream attempt):

    reservation = await limits.acquire(tokens, deadline)      # raises LimitExceeded(until)
    permit = breaker.acquire(now)
    if isinstance(permit, BreakerOpen):
        limits.cancel(reservation); return permit             # never sent: full refund
    try: response = await call()
    except ProviderError as err:
        limits.release(reservation)                           # keep the charge: it may count
        if isinstance(err, RateLimitedError) and err.retry_after_s:
            limits.cool_down(now + err.retry_after_s)
        breaker.record(permit, outcome_for(err), now); ...
    else:
        limits.reconcile(reservation, response.usage.total_tokens)
        limits.observe_headers(info, now); breaker.record_success(permit, now)

`now` must never go backwards between calls (a monotonic clock guarantees it).
"""
from __future__ import annotations

import asyncio
import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from providers.catalog import ModelSpec
from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import SwitchboardError
from providers.wire.ratelimit import RateLimitInfo

MINUTE_S = 60.0
DAY_S = 86_400.0
DEFAULT_GUARD_S = 0.1


@dataclass(frozen=True, slots=True)
class Limits:
    """The catalog's figures for one model; None means unlimited."""

    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    max_in_flight: int | None = None

    @classmethod
    def of(cls, spec: ModelSpec) -> "Limits":
        return cls(spec.rpm, spec.tpm, spec.rpd, spec.max_in_flight)


class LimitExceeded(SwitchboardError):
    """Not admitted. `until` is the earliest monotonic time it could be (math.inf: no time alone
    frees it: the request exceeds a limit outright, or `dimension == "in_flight"`)."""

    def __init__(self, until: float, dimension: str) -> None:
        super().__init__(until, dimension)  # positional args: pickles across actor hops
        self.until = until
        self.dimension = dimension

    def __str__(self) -> str:
        return f"rate limit {self.dimension} exhausted until t={self.until:.3f}"


@dataclass(frozen=True, slots=True)
class Reservation:
    """Capacity charged for one upstream attempt; finish it with reconcile, release or cancel."""

    id: int
    tokens: int
    at: float
    seqs: tuple[int, ...]  # the entry in each dimension's log


class _SlidingLog:
    """Amounts that expire, appended in expiry order. A Fenwick tree over the amounts makes the
    live total, a point update and "when will enough have expired" O(log n)."""

    __slots__ = ("_exp", "_amt", "_tree", "_first_seq", "_head")

    def __init__(self) -> None:
        self._exp: list[float] = []
        self._amt: list[int] = []
        self._tree: list[int] = [0]
        self._first_seq = 0  # sequence number of _exp[0]
        self._head = 0  # entries before it have expired

    def append(self, expiry: float, amount: int) -> int:
        if self._exp and expiry < self._exp[-1]:
            expiry = self._exp[-1]  # keep the order; living longer is the safe side
        self._exp.append(expiry)
        self._amt.append(amount)
        i = len(self._amt)
        self._tree.append(amount + self._prefix(i - 1) - self._prefix(i - (i & -i)))
        return self._first_seq + i - 1

    def set_amount(self, seq: int, amount: int) -> None:
        k = seq - self._first_seq
        if k < 0:
            return  # compacted away: long expired, nothing left to correct
        delta = amount - self._amt[k]
        self._amt[k] = amount
        i = k + 1
        while i < len(self._tree):
            self._tree[i] += delta
            i += i & -i

    def move_to_end(self, seq: int, expiry: float) -> None:
        """Re-date an entry: its amount now expires at `expiry` (appended, so the log stays in
        expiry order; never earlier than it was)."""
        k = seq - self._first_seq
        if k < 0:
            return
        amount = self._amt[k]
        if amount and expiry > self._exp[k]:
            self.set_amount(seq, 0)
            self.append(expiry, amount)

    def live(self, now: float) -> int:
        return self._prefix(len(self._amt)) - self._prefix(self._start(now))

    def earliest_at_most(self, cap: int, now: float) -> float:
        """The earliest time >= now at which the live total is <= cap (nothing added)."""
        base = self._prefix(self._start(now))
        need = self._prefix(len(self._amt)) - base - cap
        if need <= 0:
            return now
        return self._exp[self._search(base + need)]

    def expire(self, now: float) -> None:
        self._head = self._start(now)
        if self._head > 1024 and 2 * self._head > len(self._amt):
            self._compact()

    def _start(self, now: float) -> int:
        return bisect_right(self._exp, now, lo=self._head)  # first entry with expiry > now

    def _prefix(self, i: int) -> int:
        total = 0
        while i > 0:
            total += self._tree[i]
            i -= i & -i
        return total

    def _search(self, target: int) -> int:
        """Smallest 0-based k with prefix(k + 1) >= target (amounts are never negative)."""
        pos, rest, n = 0, target, len(self._tree) - 1
        step = 1 << n.bit_length()
        while step:
            nxt = pos + step
            if nxt <= n and self._tree[nxt] < rest:
                pos = nxt
                rest -= self._tree[nxt]
            step >>= 1
        return pos

    def _compact(self) -> None:
        drop = self._head
        self._exp = self._exp[drop:]
        self._amt = self._amt[drop:]
        self._first_seq += drop
        self._head = 0
        tree = [0, *self._amt]
        for i in range(1, len(tree)):
            j = i + (i & -i)
            if j < len(tree):
                tree[j] += tree[i]
        self._tree = tree


class _Dimension:
    """One windowed limit: the catalog figure, the effective (possibly tightened) one, the log,
    and a floor learned from upstream headers (`shadow`) that holds until `shadow_until`."""

    __slots__ = ("name", "horizon", "catalog_limit", "limit", "log", "shadow", "shadow_until")

    def __init__(self, name: str, window_s: float, limit: int | None) -> None:
        self.name = name
        self.horizon = window_s
        self.catalog_limit = limit
        self.limit = limit
        self.log = _SlidingLog()
        self.shadow = 0
        self.shadow_until = -math.inf

    def used(self, now: float) -> int:
        shadow = self.shadow if self.shadow_until > now else 0
        return max(self.log.live(now), shadow)

    def available_at(self, amount: int, now: float) -> float:
        if self.limit is None:
            return now
        if amount > self.limit:
            return math.inf
        at = self.log.earliest_at_most(self.limit - amount, now)
        if self.shadow_until > now and self.shadow + amount > self.limit:
            at = max(at, self.shadow_until)
        return at

    def observe(self, limit: int | None, remaining: int | None, reset_s: float | None, now: float) -> None:
        if limit is not None and limit > 0:
            self.limit = limit if self.catalog_limit is None else min(limit, self.catalog_limit)
        upstream_limit = limit if limit is not None else self.limit
        if remaining is None or upstream_limit is None:
            return
        hold = self.horizon if reset_s is None else min(max(reset_s, 0.0), self.horizon)
        self.shadow = max(0, upstream_limit - remaining)
        self.shadow_until = now + hold


class LimitState:
    """All limits of one (platform, model). See the module docstring for the guarantee."""

    def __init__(
        self,
        limits: Limits,
        *,
        clock: Clock = SYSTEM_CLOCK,
        scale: float = 1.0,
        guard_s: float = DEFAULT_GUARD_S,
        settle_s: float = 0.0,
        now: float | None = None,
    ) -> None:
        """`scale` multiplies the windows (tests: 0.02 turns a minute into 1.2 s). `settle_s`
        > 0 starts every windowed dimension fully charged for that long (capped at its window):
        a restarted actor does not know what it sent just before. Requests/day cannot be
        recovered that way; the upstream's headers re-teach them (`observe_headers`)."""
        if scale <= 0 or guard_s < 0 or settle_s < 0:
            raise ValueError("scale must be > 0, guard_s and settle_s >= 0")
        self._clock = clock
        self.limits = limits
        self._dims = (
            _Dimension("rpm", MINUTE_S * scale + guard_s, limits.rpm),
            _Dimension("tpm", MINUTE_S * scale + guard_s, limits.tpm),
            _Dimension("rpd", DAY_S * scale + guard_s, limits.rpd),
        )
        self._open: dict[int, Reservation] = {}
        self._last_id = 0
        self._cooled_until = -math.inf
        self._changed: asyncio.Event | None = None
        start = clock.monotonic() if now is None else now
        if settle_s > 0:
            for dim in self._dims:
                if dim.limit is not None:
                    dim.log.append(start + min(settle_s, dim.horizon), dim.limit)

    @classmethod
    def for_model(cls, spec: ModelSpec, **options: Any) -> "LimitState":
        return cls(Limits.of(spec), **options)

    @property
    def in_flight(self) -> int:
        return len(self._open)

    @property
    def cooled_until(self) -> float:
        return self._cooled_until

    # -- admission ---------------------------------------------------------------------------

    def try_acquire(self, tokens: int, now: float) -> Reservation | None:
        """Charge one request of `tokens` tokens in every dimension at once, or nothing."""
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        if self._in_flight_full() or self._time_bound(tokens, now)[0] > now:
            return None
        seqs = []
        for dim, amount in zip(self._dims, (1, tokens, 1)):
            dim.log.expire(now)
            seqs.append(dim.log.append(now + dim.horizon, amount))
        self._last_id += 1
        reservation = Reservation(self._last_id, tokens, now, tuple(seqs))
        self._open[reservation.id] = reservation
        return reservation

    # -- leases (providers/leases.py) -------------------------------------------------------

    def try_lease(self, requests: int, tokens: int, now: float, hold_s: float) -> Reservation | None:
        """Charge a slice of `requests` requests and `tokens` tokens at once, kept for `hold_s`
        longer than a reservation (the slice is spent during its lease, not at `now`), or
        nothing. It takes no in-flight slot. Finish it with `settle_lease`."""
        if requests < 1 or tokens < 0 or hold_s < 0:
            raise ValueError("a lease is at least one request, tokens and hold_s >= 0")
        if self._time_bound(tokens, now, requests)[0] > now:
            return None
        seqs = []
        for dim, amount in zip(self._dims, (requests, tokens, requests)):
            dim.log.expire(now)
            seqs.append(dim.log.append(now + hold_s + dim.horizon, amount))
        self._last_id += 1
        return Reservation(self._last_id, tokens, now, tuple(seqs))

    def settle_lease(self, lease: Reservation, used_requests: int, used_tokens: int) -> None:
        """The lease came back: its charges become what was used (the unused part is free at
        once; what was used keeps its expiry: the calls were counted during the lease)."""
        if used_requests < 0 or used_tokens < 0:
            raise ValueError("used amounts must be >= 0")
        for dim, seq, amount in zip(self._dims, lease.seqs, (used_requests, used_tokens, used_requests)):
            dim.log.set_amount(seq, amount)
        self._notify()

    def free(self, now: float) -> tuple[int | None, int | None]:
        """Requests and tokens that could be charged right now (None: unlimited); none while
        cooled down."""
        if self._cooled_until > now:
            return 0, 0
        rpm, tpm, rpd = (None if d.limit is None else max(0, d.limit - d.used(now)) for d in self._dims)
        requests = rpm if rpd is None else rpd if rpm is None else min(rpm, rpd)
        return requests, tpm

    def when_available(self, tokens: int, now: float) -> float:
        """The earliest time >= now at which `try_acquire(tokens)` succeeds if nothing else
        changes; math.inf if time alone never admits it (too large, or in-flight is full)."""
        if self._in_flight_full():
            return math.inf
        return self._time_bound(tokens, now)[0]

    async def acquire(self, tokens: int, deadline: float) -> Reservation:
        """Wait (event-driven, never polling) until `tokens` can be charged, up to `deadline`
        (monotonic). Raises LimitExceeded at once when the windows cannot admit it by then; a
        full in-flight limit is waited out until the deadline, woken by release/reconcile."""
        while True:
            now = self._clock.monotonic()
            reservation = self.try_acquire(tokens, now)
            if reservation is not None:
                return reservation
            until, dimension = self._time_bound(tokens, now)
            if until > deadline or until == math.inf:
                raise LimitExceeded(until, dimension)
            if until <= now:  # only the in-flight limit blocks: wait for a release
                if now >= deadline:
                    raise LimitExceeded(math.inf, "in_flight")
                until = deadline
            await self._wait(until - now)

    # -- finishing a reservation -------------------------------------------------------------

    def reconcile(self, reservation: Reservation, actual_tokens: int) -> None:
        """The call finished: charge its real token usage in place of the reservation (a refund
        when lower) and free its in-flight slot."""
        if actual_tokens < 0:
            raise ValueError("actual_tokens must be >= 0")
        self._finish(reservation, strict=True)
        self._dims[1].log.set_amount(reservation.seqs[1], actual_tokens)
        self._redate(reservation)
        self._notify()

    def release(self, reservation: Reservation) -> None:
        """Free the in-flight slot and keep the charges (the upstream may have counted the call,
        e.g. after a timeout). Safe to call twice, e.g. from a `finally`."""
        if self._finish(reservation, strict=False):
            self._redate(reservation)
            self._notify()

    def _redate(self, reservation: Reservation) -> None:
        """The upstream counted the call at some moment between our admission and now: keep its
        charges for a full window from now, so a slow hop (queueing, retries of the connection)
        cannot make the upstream's window see more than the limit."""
        now = self._clock.monotonic()
        for dim, seq in zip(self._dims, reservation.seqs):
            dim.log.move_to_end(seq, now + dim.horizon)

    def cancel(self, reservation: Reservation) -> None:
        """The call was never sent (e.g. the breaker refused it): refund every dimension."""
        self._finish(reservation, strict=True)
        for dim, seq in zip(self._dims, reservation.seqs):
            dim.log.set_amount(seq, 0)
        self._notify()

    # -- learning from the upstream ----------------------------------------------------------

    def observe_headers(self, info: RateLimitInfo, now: float) -> None:
        """Tighten from a response's rate-limit headers: a lower upstream limit replaces the
        catalog's (never a higher one), and `limit - remaining` is a floor on the window's usage
        until the reset (capped at the window). The requests figures go to requests/min or
        requests/day, whichever catalog limit is closer to the header's limit (Groq reports its
        daily requests there)."""
        self._requests_dimension(info.limit_requests).observe(
            info.limit_requests, info.remaining_requests, info.reset_requests_s, now
        )
        self._dims[1].observe(info.limit_tokens, info.remaining_tokens, info.reset_tokens_s, now)
        self._notify()  # a higher (still <= catalog) limit may admit a waiter

    def cool_down(self, until: float) -> None:
        """Refuse everything until `until` (after a 429 with Retry-After). Never shortens."""
        self._cooled_until = max(self._cooled_until, until)

    def headroom(self, now: float) -> dict[str, dict[str, int | None]]:
        """Per dimension: limit (effective), used and remaining (None when unlimited)."""
        report: dict[str, dict[str, int | None]] = {}
        for dim in self._dims:
            used = dim.used(now)
            left = None if dim.limit is None else max(0, dim.limit - used)
            report[dim.name] = {"limit": dim.limit, "used": used, "remaining": left}
        cap = self.limits.max_in_flight
        left = None if cap is None else max(0, cap - self.in_flight)
        report["in_flight"] = {"limit": cap, "used": self.in_flight, "remaining": left}
        return report

    # -- internals ---------------------------------------------------------------------------

    def _time_bound(self, tokens: int, now: float, requests: int = 1) -> tuple[float, str]:
        """The earliest time the windows and the cool-down admit `requests` requests of
        `tokens` tokens in all, and what binds."""
        until, binding = max(now, self._cooled_until), "cool_down"
        for dim, amount in zip(self._dims, (requests, tokens, requests)):
            at = dim.available_at(amount, now)
            if at > until:
                until, binding = at, dim.name
        return until, binding

    def _in_flight_full(self) -> bool:
        cap = self.limits.max_in_flight
        return cap is not None and len(self._open) >= cap

    def _requests_dimension(self, header_limit: int | None) -> _Dimension:
        rpm, rpd = self._dims[0], self._dims[2]
        if header_limit is None or header_limit <= 0 or rpd.catalog_limit is None:
            return rpm
        if rpm.catalog_limit is None:
            return rpd
        distance = lambda limit: abs(math.log(header_limit / limit))  # noqa: E731
        return rpd if distance(rpd.catalog_limit) < distance(rpm.catalog_limit) else rpm

    def _finish(self, reservation: Reservation, *, strict: bool) -> bool:
        if self._open.pop(reservation.id, None) is not None:
            return True
        if strict:
            raise ValueError(f"reservation {reservation.id} is already finished")
        return False

    async def _wait(self, seconds: float) -> None:
        """Sleep on the clock, or less if a release/reconcile/observation changes things."""
        if self._changed is None:
            self._changed = asyncio.Event()
        waits = [asyncio.ensure_future(self._changed.wait())]
        if math.isfinite(seconds):
            waits.append(asyncio.ensure_future(self._clock.sleep(seconds)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None
