"""Per-key requests/minute by lease: one KeyRateActor call per slice of a key's limit, not one
per request (issue 15: no per-request actor hop on the hot path).

The owner (`KeyLeaseDesk`, in the KeyRateActor) keeps each key's one-minute window, as
`MemoryKeyRate` does, and lends a replica a slice of `n` requests for a short term. The slice is
charged whole when it is granted, for the term on top of its minute (`LimitState.try_lease`),
so everything admitted under it is inside a live charge: used + outstanding <= rpm in every
window, cluster-wide. When the slice comes back its charge becomes what was used; a slice that
never comes back (its replica died) is charged whole and expires with its window. With several
replicas asking for the same key none gets more than rpm / replicas per term.

The holder (`LeasedKeyRate`, in each replica) admits locally until the slice is spent or its
term is over (on its own clock, started when it asked), then asks again, returning the old
slice with what it used; callers for the same key share one ask. Spent slices and the ones a
quiet key left behind go back on the next ask of any key, or with `tend()`.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from providers.leases import active_holders, forget_lost, lease_ids
from providers.limits import Limits, LimitState, Reservation

TERM_S = 1.0
log = structlog.get_logger("switchboard.key_rate")


@dataclass(frozen=True, slots=True)
class KeySlice:
    """The owner's answer: `requests` to admit within `term_s` (0: none; see `retry_after_s`)."""

    lease_id: int = 0
    requests: int = 0
    term_s: float = TERM_S
    retry_after_s: float | None = None


@dataclass(slots=True)
class _Loan:
    key_id: str
    holder: str
    reservation: Reservation
    requests: int
    granted_at: float


@dataclass
class KeyLeaseDesk:
    """The owner's side: each key's window and the slices of it out on loan."""

    clock: Clock = SYSTEM_CLOCK
    term_s: float = TERM_S
    states: dict[str, LimitState] = field(default_factory=dict)
    loans: dict[int, _Loan] = field(default_factory=dict)
    _active: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> holder -> last ask
    _ids: Iterator[int] = field(default_factory=lease_ids)

    def state(self, key_id: str, rpm: int) -> LimitState:
        state = self.states.get(key_id)
        if state is None or state.limits.rpm != rpm:  # a changed limit starts a fresh window
            state = LimitState(Limits(rpm=rpm), clock=self.clock, guard_s=0.0)
            self.states[key_id] = state
        return state

    def give_back(self, returned: Sequence[tuple[int, int]]) -> None:
        """Slices back with what was used of each (a slice already back is ignored)."""
        for lease_id, used in returned:
            loan = self.loans.pop(lease_id, None)
            if loan is not None:
                loan_state = self.states.get(loan.key_id)
                if loan_state is not None:
                    loan_state.settle_lease(loan.reservation, min(max(used, 0), loan.requests), 0)

    def lend(self, key_id: str, rpm: int, holder: str, want: int) -> KeySlice:
        if rpm <= 0 or want <= 0:
            raise ValueError("rpm and want must be > 0")
        now = self.clock.monotonic()
        forget_lost(self.loans, now, self.term_s)
        state = self.state(key_id, rpm)
        free, _ = state.free(now)
        share = max(1, rpm // active_holders(self._active.setdefault(key_id, {}), holder, now, self.term_s))
        requests = min(want, free if free is not None else want, share)
        if requests >= 1:
            reservation = state.try_lease(requests, 0, now, self.term_s)
            if reservation is not None:
                lease_id = next(self._ids)
                self.loans[lease_id] = _Loan(key_id, holder, reservation, requests, now)
                return KeySlice(lease_id, requests, self.term_s)
        until = state.when_available(0, now)
        return KeySlice(retry_after_s=None if math.isinf(until) else max(until - now, 0.0), term_s=self.term_s)


class KeyDesk(Protocol):
    """The holder's line to the owner (the KeyRateActor's `lend_key`, or a desk in tests)."""

    async def lend(self, key_id: str, rpm: int, holder: str, want: int,
                   returned: Sequence[tuple[int, int]]) -> KeySlice: ...

    async def give_back(self, returned: Sequence[tuple[int, int]]) -> None: ...


@dataclass(slots=True)
class _Held:
    lease_id: int
    rpm: int
    requests: int
    until: float  # monotonic, on the holder's clock: admit nothing at or after it
    used: int = 0


class LeasedKeyRate:
    """A replica's per-key limiter over leased slices (a `KeyRateLimiter`)."""

    def __init__(self, desk: KeyDesk, holder: str, clock: Clock = SYSTEM_CLOCK,
                 tend_every_s: float | None = TERM_S) -> None:
        """`tend_every_s`: how often a background task gives back what is over (None: only
        when `tend()` is called; tests drive it)."""
        self._desk = desk
        self._tend_every_s = tend_every_s
        self.holder = holder
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._want: dict[str, int] = {}
        self._asking: dict[str, asyncio.Future[float | None]] = {}
        self._spent: list[tuple[int, int]] = []  # slices to give back with the next ask
        self.hops = 0  # calls to the owner so far
        self._tender: asyncio.Task[None] | None = None

    async def admit(self, key_id: str, rpm: int) -> float | None:
        if rpm <= 0:
            raise ValueError("rpm must be > 0")
        while True:
            if self._take(key_id, rpm):
                return None
            if self._tender is None and self._tend_every_s is not None:
                self._tender = asyncio.ensure_future(self._tend_forever())
            asking = self._asking.get(key_id)
            if asking is None:
                asking = asyncio.ensure_future(self._ask(key_id, rpm))
                self._asking[key_id] = asking
                asking.add_done_callback(lambda done, k=key_id: self._asking.pop(k, None)
                                         if self._asking.get(k) is done else None)
            wait_s = await asyncio.shield(asking)
            if wait_s is not None and not self._take(key_id, rpm):
                return wait_s

    def _take(self, key_id: str, rpm: int) -> bool:
        held = self._held.get(key_id)
        if held is None or held.rpm != rpm or held.used >= held.requests or self._clock.monotonic() >= held.until:
            return False
        held.used += 1
        return True

    async def _ask(self, key_id: str, rpm: int) -> float | None:
        """One hop: give back the key's old slice (and any others spent), get a new one.
        Returns None when a slice was granted, else the owner's wait."""
        now = self._clock.monotonic()
        old = self._held.pop(key_id, None)
        if old is not None:
            # spent within its term: demand outgrew it; left over at expiry: it was too big
            grow = old.used >= old.requests and now < old.until
            self._want[key_id] = min(rpm, old.requests * 2) if grow else max(1, old.used)
            self._spent.append((old.lease_id, old.used))
        self._spent.extend(self._expired(now))
        returned, self._spent = self._spent, []
        self.hops += 1
        try:
            answer = await self._desk.lend(key_id, rpm, self.holder, self._want.get(key_id, 1), returned)
        except BaseException:
            self._spent.extend(returned)  # try again with the next ask
            raise
        if answer.lease_id == 0:
            return answer.retry_after_s if answer.retry_after_s is not None else 60.0
        self._held[key_id] = _Held(answer.lease_id, rpm, answer.requests, now + answer.term_s)
        return None

    def _expired(self, now: float) -> list[tuple[int, int]]:
        gone = [k for k, held in self._held.items() if now >= held.until]
        return [(held.lease_id, held.used) for held in (self._held.pop(k) for k in gone)]

    async def tend(self) -> None:
        """Give back the slices whose term is over (a quiet key's leftovers), in one hop."""
        returned = self._spent + self._expired(self._clock.monotonic())
        if returned:
            self._spent = []
            self.hops += 1
            try:
                await self._desk.give_back(returned)
            except BaseException:
                self._spent.extend(returned)
                raise

    async def _tend_forever(self) -> None:
        assert self._tend_every_s is not None
        while True:
            await self._clock.sleep(self._tend_every_s)
            try:
                await self.tend()
            except Exception as exc:  # noqa: BLE001 - the owner is away: the next ask or tend
                log.warning("key_rate.give_back_failed", error_type=type(exc).__name__)

    async def close(self) -> None:
        """Stop tending and give every slice back (a replica that stops)."""
        if self._tender is not None:
            self._tender.cancel()
            self._tender = None
        returned = self._spent + [(held.lease_id, held.used) for held in self._held.values()]
        self._spent, self._held = [], {}
        if returned:
            await self._desk.give_back(returned)


class ActorKeyDesk:
    """The holder's line to the named KeyRateActor."""

    def __init__(self, handle: Any) -> None:
        self._actor = handle

    async def lend(self, key_id: str, rpm: int, holder: str, want: int,
                   returned: Sequence[tuple[int, int]]) -> KeySlice:
        return await self._actor.lend_key.remote(key_id, rpm, holder, want, list(returned))

    async def give_back(self, returned: Sequence[tuple[int, int]]) -> None:
        await self._actor.give_back_keys.remote(list(returned))
