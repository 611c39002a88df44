"""Per-key requests/minute by lease (runtime/http/key_leases.py): replicas admit locally under
slices lent by the owner, one hop per slice; the window stays exact cluster-wide."""
import asyncio
import copy

import pytest

from providers.clock import FakeClock
from runtime.http.key_leases import KeyLeaseDesk, LeasedKeyRate
from runtime.http.key_rate import KeyRateActor, enforce
from tests.unit.http.hardening.conftest import FakePrincipal


class Line:
    """A holder's line to the owner: messages copied as across a process; it can be cut."""

    def __init__(self, owner: KeyRateActor) -> None:
        self.owner, self.up = owner, True

    async def lend(self, key_id, rpm, holder, want, returned):
        if not self.up:
            raise ConnectionError("the key-rate actor is unreachable")
        await asyncio.sleep(0)
        return copy.deepcopy(await self.owner.lend_key(key_id, rpm, holder, want, copy.deepcopy(list(returned))))

    async def give_back(self, returned):
        if not self.up:
            raise ConnectionError("the key-rate actor is unreachable")
        await self.owner.give_back_keys(list(returned))


def run(coro):
    return asyncio.run(coro)


def admitted_per_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + window) for t in times), default=0)


def test_two_replicas_under_200_callers_never_pass_the_keys_rpm_and_hop_once_per_slice():
    async def main():
        clock = FakeClock()
        owner = KeyRateActor(clock=clock)
        holders = [LeasedKeyRate(Line(owner), f"replica-{i}", clock, None) for i in range(2)]
        admitted: list[float] = []
        for _ in range(150):  # 150 ticks of 1 s: two and a half minutes of load
            answers = await asyncio.gather(*(holders[i % 2].admit("k", 30) for i in range(200)))
            admitted += [clock.monotonic()] * sum(a is None for a in answers)
            assert all(a is None or a > 0 for a in answers)
            clock.advance(1.0)
        assert admitted_per_window(admitted) <= 30
        assert len(admitted) >= 2 * 30  # the limit is used, window after window
        hops = sum(h.hops for h in holders)
        assert hops < 150 * 200 / 20  # far fewer hops than requests (30,000 here)
        for h in holders:
            await h.close()
    run(main())


def test_a_quiet_keys_leftovers_go_back_so_another_replica_gets_them():
    async def main():
        clock = FakeClock()
        owner = KeyRateActor(clock=clock)
        a, b = LeasedKeyRate(Line(owner), "a", clock, None), LeasedKeyRate(Line(owner), "b", clock, None)
        for _ in range(4):  # a's slices grow while it spends them
            assert all(r is None for r in await asyncio.gather(*(a.admit("k", 10) for _ in range(2))))
        clock.advance(2.0)  # a falls quiet; its term is over
        await a.tend()
        answers = [await b.admit("k", 10) for _ in range(2)]
        assert answers == [None, None] and len(owner.desk.loans) == 1  # only b's slice is out
        assert await b.admit("k", 10) is not None  # 8 used by a + 2 by b: the window is full
    run(main())


def test_a_dead_replicas_slice_expires_with_its_window():
    async def main():
        clock = FakeClock()
        owner = KeyRateActor(clock=clock)
        dead = LeasedKeyRate(Line(owner), "dead", clock, None)
        assert await dead.admit("k", 5) is None  # holds a slice, then dies without a word
        survivor = LeasedKeyRate(Line(owner), "survivor", clock, None)
        served = sum([await survivor.admit("k", 5) is None for _ in range(10)])
        assert 1 + served <= 5
        clock.advance(61.5)  # the dead slice's term and minute are over
        assert all([await survivor.admit("k", 5) is None for _ in range(4)])
    run(main())


def test_an_unreachable_owner_fails_open_and_what_was_used_is_given_back_later():
    async def main():
        clock = FakeClock()
        owner = KeyRateActor(clock=clock)
        line = Line(owner)
        holder = LeasedKeyRate(line, "a", clock, None)
        who = FakePrincipal("u", "k", False, rpm=3)
        await enforce(holder, who)
        (loan,) = owner.desk.loans.values()
        line.up = False
        clock.advance(2.0)
        await enforce(holder, who)  # cannot renew: let through (fairness, not money), logged
        line.up = True
        await holder.tend()
        assert owner.desk.loans == {}  # the slice came back with its use
        assert owner.desk.states["k"].free(clock.monotonic())[0] == 3 - 1
    run(main())


def test_the_owner_lends_no_more_than_is_free_nor_more_than_a_fair_share():
    clock = FakeClock()
    desk = KeyLeaseDesk(clock)
    first = desk.lend("k", 10, "a", 8)
    second = desk.lend("k", 10, "b", 8)
    assert (first.requests, second.requests) == (8, 2)  # b: what is free
    desk.give_back([(first.lease_id, 3)])
    third = desk.lend("k", 10, "a", 8)
    assert third.requests == 5  # fair share with two holders active
    nothing = desk.lend("k", 10, "c", 8)
    assert nothing.lease_id == 0 and nothing.retry_after_s == pytest.approx(61.0)


def test_a_slice_is_not_used_past_its_term():
    """Its charge lives for the term plus a minute from the grant: a call admitted later under
    it could be counted past that charge, so the holder asks again instead."""
    async def main():
        clock = FakeClock()
        owner = KeyRateActor(clock=clock)
        holder = LeasedKeyRate(Line(owner), "a", clock, None)
        for _ in range(3):  # grow the slice past one request
            await asyncio.gather(*(holder.admit("k", 100) for _ in range(4)))
        hops = holder.hops
        clock.advance(owner.desk.term_s)
        assert await holder.admit("k", 100) is None
        assert holder.hops == hops + 1
    run(main())
