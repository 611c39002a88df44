"""Exact limits under leases, as a property: for any interleaving of grants, calls under them,
returns, expiries, holders that vanish, cool-downs and clock steps, over several holders of
one model,

- the owner's live charge (used + outstanding) never passes any limit;
- what the upstream sees — every call made under a slice, at the moment it was made — never
  holds more than `rpm` calls or `tpm` tokens in any window of the upstream's length.

The holders here follow the holder's rule (providers/lease_holder.py): a call is made only
before `asked_at + term`, within the slice's requests and tokens."""
from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from providers.catalog import ModelSpec
from providers.clock import FakeClock
from providers.guard import ModelGuard
from providers.leases import LeaseAsk, LeaseDesk, ModelReport

SCALE = 0.01  # windows of 0.6 s
WINDOW = 60.0 * SCALE
TERM = 0.15
RPM, TPM = 4, 800
SPEC = ModelSpec("openai", "m", 0.1, 0.1, 8_000, rpm=RPM, tpm=TPM)
HOLDERS = ("a", "b", "c")
RARE = st.integers(0, 5)  # a rule that acts on 0 only: one step in six


@dataclass
class HeldLease:
    holder: str
    id: int
    requests_left: int
    tokens_left: int
    expires_at: float
    per_call: int
    used_requests: int = 0
    used_tokens: int = 0  # real tokens of finished calls + reserved tokens of running ones
    running: list[tuple[int, int]] = field(default_factory=list)  # (reserved, real) of calls not finished


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.guard = ModelGuard(SPEC, self.clock, window_scale=SCALE, guard_s=0.05)
        self.desk = LeaseDesk(self.guard, self.clock, TERM)
        self.leases: list[HeldLease] = []
        self.arrivals: list[tuple[float, int]] = []  # (time, real tokens) of every upstream call
        self.granted = 0

    @rule(holder=st.sampled_from(HOLDERS), requests=st.integers(1, 15), per_call=st.integers(1, 400),
          asked_ago=st.floats(0, TERM / 2))
    def ask(self, holder: str, requests: int, per_call: int, asked_ago: float) -> None:
        """The holder asked `asked_ago` seconds before the owner answers (its clock starts
        then; the answer can only be later than that)."""
        asked_at = self.clock.monotonic() - asked_ago
        grant = self.desk.apply(holder, ModelReport("m", ask=LeaseAsk(requests, requests * per_call, per_call)))
        if grant.lease_id:
            assert 1 <= grant.requests <= requests and grant.tokens <= requests * per_call
            self.granted += 1
            self.leases.append(HeldLease(holder, grant.lease_id, grant.requests, grant.tokens, asked_at + grant.term_s,
                                          per_call))

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), size=st.floats(0, 1), real_share=st.floats(0, 1), calls=st.integers(1, 4))
    def call(self, data, size: float, real_share: float, calls: int) -> None:
        lease = data.draw(st.sampled_from(self.leases))
        for _ in range(calls):
            self._call(lease, max(1, int(lease.per_call * size)), real_share)

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def call_at_the_end_of_its_term(self, data) -> None:
        """The worst moment for the owner: the last instant the slice may be used."""
        lease = data.draw(st.sampled_from(self.leases))
        now = self.clock.monotonic()
        if lease.expires_at - 1e-6 <= now:
            return
        self.clock.advance(lease.expires_at - 1e-6 - now)
        while lease.requests_left and lease.tokens_left:
            self._call(lease, min(lease.per_call, lease.tokens_left), 1.0)

    @rule(holder=st.sampled_from(HOLDERS), requests=st.integers(1, 15), per_call=st.integers(1, 400))
    def ask_the_moment_it_frees(self, holder: str, requests: int, per_call: int) -> None:
        now = self.clock.monotonic()
        until = self.guard.limits.when_available(per_call, now)
        if until != float("inf"):
            self.clock.advance(until - now)
        self.ask(holder, requests, per_call, 0.0)

    def _call(self, lease: HeldLease, tokens: int, real_share: float) -> None:
        now = self.clock.monotonic()
        if now >= lease.expires_at or lease.requests_left < 1 or lease.tokens_left < tokens:
            return  # the holder's rule: no call outside its slice
        lease.requests_left -= 1
        lease.tokens_left -= tokens
        lease.used_requests += 1
        lease.used_tokens += tokens
        real = int(tokens * real_share)
        lease.running.append((tokens, real))
        self.arrivals.append((now, real))

    @precondition(lambda self: any(l.running for l in self.leases))
    @rule(data=st.data())
    def finish(self, data) -> None:
        lease = data.draw(st.sampled_from([l for l in self.leases if l.running]))
        reserved, real = lease.running.pop(0)
        lease.used_tokens -= reserved - real  # the holder reports real tokens once known

    @precondition(lambda self: self.leases)
    @rule(data=st.data())
    def give_back(self, data) -> None:
        lease = data.draw(st.sampled_from(self.leases))
        self.leases.remove(lease)
        self.desk.apply(lease.holder, ModelReport("m", returned=((lease.id, lease.used_requests, lease.used_tokens),)))

    @precondition(lambda self: self.leases)
    @rule(data=st.data(), rare=RARE)
    def holder_dies(self, data, rare: int) -> None:
        """A replica killed while holding leases: they never come back."""
        if rare:
            return
        holder = data.draw(st.sampled_from(sorted({l.holder for l in self.leases})))
        self.leases = [l for l in self.leases if l.holder != holder]

    @rule(seconds=st.floats(0.001, TERM))
    def step(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.floats(TERM, WINDOW + TERM))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(seconds=st.floats(0.1, 2.0), rare=RARE)
    def upstream_429(self, seconds: float, rare: int) -> None:
        if rare:
            return
        self.desk.apply("a", ModelReport("m", cool_for_s=seconds))
        assert self.desk.apply("b", ModelReport("m", ask=LeaseAsk(1, 1, 1))).lease_id == 0  # nothing lent cooled

    @rule()
    def retried_return_is_idempotent(self) -> None:
        before = self.guard.limits.headroom(self.clock.monotonic())
        self.desk.take_back(12345, 0, 0)  # not a lease of ours
        assert self.guard.limits.headroom(self.clock.monotonic()) == before

    @invariant()
    def the_owner_never_lends_past_a_limit(self) -> None:
        now = self.clock.monotonic()
        room = self.guard.limits.headroom(now)
        assert room["rpm"]["used"] <= RPM and room["tpm"]["used"] <= TPM
        lent_requests, lent_tokens = self.desk.outstanding(now)
        assert lent_requests <= room["rpm"]["used"] and lent_tokens <= room["tpm"]["used"]

    @invariant()
    def the_upstream_never_sees_more_than_a_window_allows(self) -> None:
        times = self.arrivals
        start = 0
        calls = tokens = 0
        for end, (t, real) in enumerate(times):  # arrivals are in time order
            calls, tokens = calls + 1, tokens + real
            while times[start][0] <= t - WINDOW:
                calls, tokens = calls - 1, tokens - times[start][1]
                start += 1
            assert calls <= RPM, f"{calls} calls within {WINDOW}s ending at {t}"
            assert tokens <= TPM


LeaseMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TestLeaseProperty = LeaseMachine.TestCase


def test_the_machine_reaches_grants_and_calls():
    """The property above is not vacuous: its rules lend and call (a sequence by hand)."""
    machine = LeaseMachine()
    machine.ask("a", 5, 10, 0.0)
    lease = machine.leases[0]
    machine.call(_Data(lease), 1.0, 1.0, 1)
    assert machine.granted == 1 and machine.arrivals and lease.used_requests == 1
    machine.the_owner_never_lends_past_a_limit()
    machine.the_upstream_never_sees_more_than_a_window_allows()


class _Data:
    def __init__(self, value) -> None:
        self.value = value

    def draw(self, _strategy):
        return self.value
