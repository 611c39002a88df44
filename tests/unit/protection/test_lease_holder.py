"""Admission by lease end to end without Ray: holders (what a Serve replica runs:
providers/leased_platform.py) renew against a real ProviderActor object in this process, call a
scripted upstream, on one fake clock. The actor's side is only reached through `Line`, which
copies every message both ways as a Ray call would."""
from __future__ import annotations

import asyncio
import copy
import pickle
from dataclasses import replace

from providers.actor import ProviderActor
from providers.clock import FakeClock
from providers.leased_platform import LeasedPlatform, leased_platform
from providers.settings import BreakerSection, PlatformSettings, ProtectionSection
from providers.types import (
    AuthenticationError,
    BreakerOpenRefusal,
    ChatRequest,
    ChatResponse,
    LeaseUnavailableRefusal,
    Message,
    PlatformDisabledRefusal,
    RateLimitedError,
    RateLimitRefusal,
    ServerError,
    UpstreamTimeoutError,
    Usage,
)
from runtime.config import load_config

CFG = load_config()
MODEL = "gpt-4o-mini"
SCALE = 0.05  # windows of 3 s; the actor's lease term is then 5% of that
WINDOW = 60.0 * SCALE


class Upstream:
    """The platform as the holders' transports reach it: every arrival on the clock, answers
    as scripted (default ok); `gate` holds calls open until set."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.arrivals: list[tuple[float, str]] = []
        self.script: list[object] = []
        self.gate: asyncio.Event | None = None

    async def complete(self, request, model_id, budget_s):
        self.arrivals.append((self.clock.monotonic(), model_id))
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else "ok"
        if isinstance(outcome, Exception):
            raise copy.copy(outcome)
        return ChatResponse("hi", Usage(10, 5), "stop", "openai", model_id), {}

    def most_in_any_window(self) -> int:
        times = sorted(t for t, _ in self.arrivals)
        return max((sum(1 for u in times if t <= u < t + WINDOW) for t in times), default=0)


class Line:
    """A holder's line to the actor: messages are copied (they cross a process), and the line
    can be cut."""

    def __init__(self, actor: ProviderActor) -> None:
        self.actor = actor
        self.up = True
        self.renewals = 0

    def _check(self) -> None:
        if not self.up:
            raise ConnectionError("the provider actor is unreachable")

    async def renew(self, renewal):
        self._check()
        self.renewals += 1
        return copy.deepcopy(await self.actor.renew(copy.deepcopy(renewal)))

    async def admit(self, model, tokens, deadline_wall, wait):
        self._check()
        return copy.deepcopy(await self.actor.admit_one(model, tokens, deadline_wall, wait))

    async def settle(self, admission_id, outcome, used_tokens, headers, cool_for_s):
        self._check()
        await self.actor.settle_one(admission_id, outcome, used_tokens, copy.deepcopy(headers), cool_for_s)


class Cluster:
    def __init__(self, clock: FakeClock, **model) -> None:
        base = CFG.platform_settings("openai")
        spec = replace(next(m for m in base.models if m.id == MODEL), **model)
        protection = ProtectionSection(window_scale=SCALE, guard_s=0.05, settle_on_restart=False,
                                       breaker=BreakerSection(consecutive_failures=3, base_cooldown_s=1.0))
        self.settings = PlatformSettings("openai", base.entry, (spec,), protection, base.default_max_tokens)
        self.clock = clock
        self.actor = ProviderActor(self.settings, "http://127.0.0.1:9/v1", simulated=True, clock=clock, restarted=False)
        self.upstream = Upstream(clock)
        self.lines: list[Line] = []

    async def holder(self, name: str) -> LeasedPlatform:
        line = Line(self.actor)
        self.lines.append(line)
        return leased_platform(name, self.settings, await self.actor.lease_settings(), line, self.clock,
                               transport=self.upstream)

    async def status(self) -> dict:
        return (await self.actor.status())["models"][MODEL]


def req() -> ChatRequest:
    return ChatRequest((Message("user", "hello"),), max_tokens=50, model=MODEL)


async def call(holder: LeasedPlatform, clock: FakeClock, wait: bool = False):
    return await holder.caller.complete(req(), clock.time() + 30, wait=wait, retry=False)


async def settle_background() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def run(coro):
    return asyncio.run(coro)


async def fail_three_times(cluster: Cluster, holder: LeasedPlatform) -> list:
    """Three upstream 5xx in a row through `holder`: enough to trip the breaker (config above)."""
    cluster.upstream.script = [ServerError("boom", status=500)] * 3
    return [await call(holder, cluster.clock) for _ in range(3)]


def test_one_renewal_serves_many_calls_and_nothing_is_sent_through_the_actor():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=10_000, tpm=None)
        a = await cluster.holder("a")
        for _ in range(100):
            assert isinstance(await call(a, clock), ChatResponse)
        assert len(cluster.upstream.arrivals) == 100
        assert cluster.lines[0].renewals <= 10  # batches, not a hop per call
        status = await cluster.status()
        assert status["leased"]["requests"] >= 1  # what the holder has now is lent, and counted
        assert status["limits"]["rpm"]["used"] >= 100
    run(main())


def test_two_holders_under_200_concurrent_callers_never_exceed_rpm_at_the_upstream():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=20, tpm=None)
        holders = [await cluster.holder("a"), await cluster.holder("b")]
        refused = 0
        for step in range(int(4 * WINDOW / 0.05)):
            results = await asyncio.gather(*(call(holders[i % 2], clock) for i in range(200 if step == 0 else 10)))
            refused += sum(isinstance(r, RateLimitRefusal) for r in results)
            for h in holders:
                await h.renewer.tick()
            clock.advance(0.05)
        assert cluster.upstream.most_in_any_window() <= 20
        assert len(cluster.upstream.arrivals) >= 40  # four windows: the limit is used, not idled away
        assert refused > 0
        assert {h.renewer.holder for h in holders} == {"a", "b"}
    run(main())


def test_failures_reported_in_batches_trip_the_actors_breaker_and_every_holder_applies_it():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a, b = await cluster.holder("a"), await cluster.holder("b")
        assert all(isinstance(r, ServerError) for r in await fail_three_times(cluster, a))
        await a.renewer.sync()  # the failures reach the actor with a's next renewal
        assert (await cluster.status())["breaker"]["state"] == "open"
        sent = len(cluster.upstream.arrivals)
        clock.advance(0.2)  # b's slice runs out; its renewal brings the breaker's state
        refused_b = await call(b, clock)
        refused_a = await call(a, clock)
        assert isinstance(refused_a, BreakerOpenRefusal) and isinstance(refused_b, BreakerOpenRefusal)
        assert len(cluster.upstream.arrivals) == sent  # refused locally, nothing sent
    run(main())


def test_a_half_open_breaker_gives_exactly_one_probe_cluster_wide():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a, b = await cluster.holder("a"), await cluster.holder("b")
        await fail_three_times(cluster, a)
        await a.renewer.sync()
        await b.renewer.sync()
        clock.advance(1.5)  # past the cool-down: the breaker is half-open
        cluster.upstream.gate = asyncio.Event()
        calls = [asyncio.ensure_future(call(h, clock)) for h in (a, b, a, b)]
        await settle_background()
        assert len(cluster.upstream.arrivals) == 4  # the three failures, then the one probe
        cluster.upstream.gate.set()
        results = await asyncio.gather(*calls)
        assert sum(isinstance(r, ChatResponse) for r in results) == 1
        assert all(isinstance(r, BreakerOpenRefusal) for r in results if not isinstance(r, ChatResponse))
        await settle_background()
        assert (await cluster.status())["breaker"]["state"] == "closed"  # the probe closed it
        for h in (a, b):
            await h.renewer.sync()
            assert isinstance(await call(h, clock), ChatResponse)  # leases again
    run(main())


def test_a_holder_that_cannot_renew_refuses_rather_than_guesses_and_recovers():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a = await cluster.holder("a")
        cluster.lines[0].up = False
        refusal = await call(a, clock)
        assert isinstance(refusal, LeaseUnavailableRefusal) and refusal.retry_after_s > 0
        assert cluster.upstream.arrivals == []
        assert isinstance(await call(a, clock), LeaseUnavailableRefusal)  # no new attempt meanwhile
        assert cluster.lines[0].renewals == 0
        cluster.lines[0].up = True
        clock.advance(0.6)
        assert isinstance(await call(a, clock), ChatResponse)
    run(main())


def test_a_dead_holders_slices_come_back_at_expiry_and_no_limit_is_exceeded():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=20, tpm=None)
        dead = await cluster.holder("dead")
        results = await asyncio.gather(*(call(dead, clock) for _ in range(5)))
        served = sum(isinstance(r, ChatResponse) for r in results)
        assert served == 5
        leased = (await cluster.status())["leased"]
        assert leased["holders"] == ["dead"] and leased["requests"] >= 1  # it dies holding a slice
        # the holder is killed here: it never returns its slice nor reports
        survivor = await cluster.holder("survivor")
        taken = 0
        for _ in range(int((WINDOW + 0.5) / 0.05)):
            taken += sum(isinstance(r, ChatResponse) for r in await asyncio.gather(*(call(survivor, clock) for _ in range(5))))
            await survivor.renewer.tick()
            clock.advance(0.05)
        assert cluster.upstream.most_in_any_window() <= 20
        assert taken >= 20 - served  # what the dead holder had not used came back
        assert "dead" not in (await cluster.status())["leased"]["holders"]  # forgotten, its charges expired
        clock.advance(WINDOW)
        late = await asyncio.gather(*(call(survivor, clock) for _ in range(10)))
        assert sum(isinstance(r, ChatResponse) for r in late) >= 1  # and the rest after its window
        assert cluster.upstream.most_in_any_window() <= 20
    run(main())


def test_a_429_cools_the_model_down_for_every_holder_by_their_next_renewal():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a, b = await cluster.holder("a"), await cluster.holder("b")
        assert isinstance(await call(b, clock), ChatResponse)
        cluster.upstream.script = [RateLimitedError("slow down", status=429, retry_after_s=2.0)]
        assert isinstance(await call(a, clock), RateLimitedError)
        assert isinstance(await call(a, clock), RateLimitRefusal)  # a knows at once
        await a.renewer.sync()
        assert (await cluster.status())["cooled_for_s"] > 1.9
        clock.advance(0.2)  # b's slice has ended: its renewal brings the cool-down
        sent = len(cluster.upstream.arrivals)
        assert isinstance(await call(b, clock), RateLimitRefusal)
        assert len(cluster.upstream.arrivals) == sent
        clock.advance(2.0)
        assert isinstance(await call(b, clock), ChatResponse)
    run(main())


def test_a_disabled_key_reaches_every_holder_and_enable_reaches_them_too():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a, b = await cluster.holder("a"), await cluster.holder("b")
        cluster.upstream.script = [AuthenticationError("bad key", status=401)]
        assert isinstance(await call(a, clock), AuthenticationError)
        assert isinstance(await call(a, clock), PlatformDisabledRefusal)
        await a.renewer.sync()
        assert (await cluster.actor.status())["disabled"]["kind"] == "authentication"
        await b.renewer.tick()
        assert isinstance(await call(b, clock), PlatformDisabledRefusal)
        assert await cluster.actor.enable() is True
        for h in (a, b):
            await h.renewer.tick()
            assert isinstance(await call(h, clock), ChatResponse)
    run(main())


def test_a_model_with_an_in_flight_limit_is_admitted_by_the_actor_one_call_at_a_time():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000, max_in_flight=1)
        a, b = await cluster.holder("a"), await cluster.holder("b")
        cluster.upstream.gate = asyncio.Event()
        first = asyncio.ensure_future(call(a, clock))
        await settle_background()
        assert len(cluster.upstream.arrivals) == 1
        assert (await cluster.status())["limits"]["in_flight"]["used"] == 1
        assert isinstance(await call(b, clock), RateLimitRefusal)  # the other holder is refused
        cluster.upstream.gate.set()
        assert isinstance(await first, ChatResponse)
        await settle_background()
        assert (await cluster.status())["limits"]["in_flight"]["used"] == 0  # settled with the actor
        assert isinstance(await call(b, clock), ChatResponse)
        assert (await cluster.status())["leased"]["requests"] == 0  # nothing of it is ever lent
    run(main())


def test_close_gives_every_slice_back_for_others_at_once():
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=20, tpm=None)
        a = await cluster.holder("a")
        await asyncio.gather(*(call(a, clock) for _ in range(20)))
        used = len(cluster.upstream.arrivals)
        await a.renewer.close()
        status = await cluster.status()
        assert status["leased"]["requests"] == 0 and status["limits"]["rpm"]["used"] == used
    run(main())


def test_usage_survives_a_renewal_that_is_lost():
    """A renewal that fails is told again with the next one: the owner never forgets a call."""
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=1_000)
        a = await cluster.holder("a")
        for _ in range(5):
            await call(a, clock)
        line = cluster.lines[0]
        line.up = False
        clock.advance(0.2)
        await a.renewer.tick()  # returns the slice with its usage: lost
        line.up = True
        clock.advance(0.6)
        await a.renewer.tick()
        status = await cluster.status()
        assert status["limits"]["rpm"]["used"] == 5 and status["leased"]["requests"] == 0
    run(main())


def test_attempts_sent_and_never_answered_are_counted_through_retries_and_pickling():
    """A read timeout then an answer: the answer says one attempt went unanswered (the gateway
    charges it at its worst case); an error that crosses a process keeps the count."""
    async def main():
        clock = FakeClock()
        cluster = Cluster(clock, rpm=20, tpm=None)
        holder = await cluster.holder("one")
        cluster.upstream.script = [UpstreamTimeoutError("timeout waiting for response", unanswered=1)]
        answer = await holder.caller.complete(req(), clock.time() + 30, retry=True)
        assert isinstance(answer, ChatResponse) and (answer.attempts, answer.unanswered) == (2, 1)
        cluster.upstream.script = [UpstreamTimeoutError("timeout waiting for response", unanswered=1)] * 2
        failed = await holder.caller.complete(req(), clock.time() + 30, retry=False)
        assert isinstance(failed, UpstreamTimeoutError) and failed.unanswered == 1
        assert pickle.loads(pickle.dumps(failed)).unanswered == 1
    run(main())
