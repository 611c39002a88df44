"""Spending allowances (budget leases), pure: what the ledger grants and what a replica holds.

A replica with a journal admits a budgeted key's requests against an allowance the ledger
granted it (runtime/finops/allowance_schema.py says how the ledger counts one), so such a request
waits for its journal's group commit, not for a hop to the ledger and its commit. The book below
is the replica's side: one open allowance per key and set of budgets, each request's
reservation drawn from it, its final cost settled into it. An allowance is retired when its term
ends, when its UTC day ends (it counts on the day it was granted), or when a request does not
fit in what is left; once nothing admitted under it is in flight it is returned with the exact
amount its rows came to. Sizes follow demand: a new grant asks for enough for the requests the
last one drew per second, over a whole term (an allowance used up in 0.1 s asks for 50 times
as much next), at least `MIN_REQUESTS` of the current one.

Invariant (what keeps budgets exact): a replica's rows under an allowance never come to more than
it was granted, so with the ledger counting `MAX(granted, drawn)` per allowance, the sum over
every replica never passes what the ledger checked against the budgets when it granted.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Hashable, Sequence

from runtime.finops.budget import BudgetUsage, utc_day_start

#: an allowance's term (seconds of wall time); then it is retired and returned once drained
TERM_S = 5.0
#: a grant is asked for at least this many of the request's reservation
MIN_REQUESTS = 16
#: the ledger grants at most this share of a budget's room left, so other replicas find some
MAX_SHARE_OF_ROOM = 0.5
#: the shortest life a drawing rate is measured over (an allowance used up at once)
MIN_AGE_S = 0.05
#: a request admitted this long ago that never settled (its caller was cancelled) is settled at
#: its reservation: what the ledger's recovery charges its pending row ('unknown')
STALE_AFTER_S = 180.0


@dataclass(frozen=True, slots=True)
class AllowanceAsk:
    """A replica's request for an allowance: at least `least_nusd` (the request waiting for
    it), `want_nusd` if the budgets have room."""

    allowance_id: str
    user_id: str
    key_id: str | None
    created_at: float
    expires_at: float
    least_nusd: int
    want_nusd: int


@dataclass(frozen=True, slots=True)
class Granted:
    allowance_id: str
    granted_nusd: int
    usage: tuple[BudgetUsage, ...] = ()


def grant_amount(usages: Sequence[BudgetUsage], least_nusd: int, want_nusd: int) -> int | None:
    """What the ledger grants: `want` within `MAX_SHARE_OF_ROOM` of the tightest budget's room,
    never less than `least`; None if even `least` does not fit (a refusal)."""
    room = min((u.budget.limit_nusd - u.used_nusd for u in usages), default=want_nusd)
    if room < least_nusd:
        return None
    return max(least_nusd, min(want_nusd, int(room * MAX_SHARE_OF_ROOM)))


@dataclass(frozen=True, slots=True)
class Return:
    """An allowance given back: its rows came to `used_nusd` in all."""

    allowance_id: str
    used_nusd: int


@dataclass(slots=True)
class Allowance:
    allowance_id: str
    granted_nusd: int
    day_start: float
    expires_at: float
    granted_at: float
    used_nusd: int = 0
    in_flight: int = 0
    retired: bool = False


@dataclass(slots=True)
class _Admission:
    allowance: Allowance
    reserved_nusd: int
    at: float


@dataclass
class AllowanceBook:
    """The allowances one replica holds (no I/O; times are wall seconds from the caller)."""

    term_s: float = TERM_S
    stale_after_s: float = STALE_AFTER_S
    open: dict[Hashable, Allowance] = field(default_factory=dict)
    _admissions: dict[str, _Admission] = field(default_factory=dict)
    _draining: dict[str, Allowance] = field(default_factory=dict)
    _last_rate: dict[Hashable, float] = field(default_factory=dict)  # nano-USD drawn per second

    def admit(self, key: Hashable, request_id: str, reserved_nusd: int, now: float) -> tuple[str | None, list[Return]]:
        """Draw `reserved_nusd` for `request_id` from `key`'s open allowance: its id, or None
        when a new grant is needed (the open one, if any, is retired). Also returns what became
        returnable."""
        current = self.open.get(key)
        if current is not None and (now >= current.expires_at or utc_day_start(now) != current.day_start
                                    or current.used_nusd + reserved_nusd > current.granted_nusd):
            returns = self.retire(key, now)
            current = None
        else:
            returns = []
        if current is None:
            return None, returns
        current.used_nusd += reserved_nusd
        current.in_flight += 1
        self._admissions[request_id] = _Admission(current, reserved_nusd, now)
        return current.allowance_id, returns

    def allowance_of(self, request_id: str) -> str | None:
        admission = self._admissions.get(request_id)
        return admission.allowance.allowance_id if admission else None

    def ask(self, key: Hashable, user_id: str, key_id: str | None, reserved_nusd: int, now: float) -> AllowanceAsk:
        """What to ask the ledger for, for a request of `reserved_nusd` that found no room."""
        want = max(MIN_REQUESTS * reserved_nusd, int(self._last_rate.get(key, 0.0) * self.term_s))
        return AllowanceAsk(f"alw_{uuid.uuid4().hex}", user_id, key_id, now,
                            min(now + self.term_s, utc_day_start(now) + 86_400.0), reserved_nusd, want)

    def install(self, key: Hashable, ask: AllowanceAsk, granted: Granted) -> list[Return]:
        """The ledger granted `ask`: it becomes `key`'s open allowance (an open one is retired)."""
        returns = self.retire(key, ask.created_at)
        self.open[key] = Allowance(granted.allowance_id, granted.granted_nusd, utc_day_start(ask.created_at),
                                   ask.expires_at, ask.created_at)
        return returns

    def settle(self, request_id: str, final_nusd: int) -> tuple[str | None, list[Return]]:
        """A request admitted here ended costing `final_nusd` (what its final row says): its
        allowance's id (None if it was not admitted here) and what became returnable."""
        admission = self._admissions.pop(request_id, None)
        if admission is None:
            return None, []
        allowance = admission.allowance
        allowance.used_nusd += final_nusd - admission.reserved_nusd
        allowance.in_flight -= 1
        return allowance.allowance_id, self._returnable(allowance)

    def retire(self, key: Hashable, now: float | None = None) -> list[Return]:
        """Stop admitting under `key`'s open allowance; with `now`, remember how fast it was drawn."""
        allowance = self.open.pop(key, None)
        if allowance is None:
            return []
        allowance.retired = True
        if now is not None:
            self._last_rate[key] = allowance.used_nusd / max(now - allowance.granted_at, MIN_AGE_S)
        self._draining[allowance.allowance_id] = allowance
        return self._returnable(allowance)

    def retire_expired(self, now: float) -> list[Return]:
        """Retire every open allowance past its term or its day, and settle at their reservation
        the requests that never settled within `stale_after_s` (a replica's tend calls this)."""
        returns: list[Return] = []
        for request_id in [r for r, a in self._admissions.items() if now - a.at >= self.stale_after_s]:
            returns += self.settle(request_id, self._admissions[request_id].reserved_nusd)[1]
        for key, allowance in list(self.open.items()):
            if now >= allowance.expires_at or utc_day_start(now) != allowance.day_start:
                returns += self.retire(key, now)
        return returns

    def retire_all(self) -> list[Return]:
        returns: list[Return] = []
        for key in list(self.open):
            returns += self.retire(key)
        return returns

    def _returnable(self, allowance: Allowance) -> list[Return]:
        if not allowance.retired or allowance.in_flight:
            return []
        del self._draining[allowance.allowance_id]
        return [Return(allowance.allowance_id, allowance.used_nusd)]

    @property
    def draining(self) -> int:
        return len(self._draining)
