"""Batcher: calls made while a batch is in flight ride the next one; each caller gets its own
result or error; nothing submitted is lost or sent twice."""
from __future__ import annotations

import asyncio

import pytest

from runtime.finops.batching import Batcher


class GatedSend:
    """A `send` that records each batch and, while `gate` is clear, holds it in flight."""

    def __init__(self, results=lambda items: [f"ok:{i}" for i in items]) -> None:
        self.batches: list[list] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.results = results

    async def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return self.results(items)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_call_goes_out_at_once_as_a_batch_of_one():
    send = GatedSend()
    batcher = Batcher(send)
    assert await batcher.call(7) == "ok:7"
    assert send.batches == [[7]]


async def test_calls_made_while_a_batch_is_in_flight_ride_the_next_batch():
    send = GatedSend()
    send.gate.clear()
    batcher = Batcher(send, max_in_flight=1)
    first = asyncio.ensure_future(batcher.call(0))
    await settle()
    assert send.batches == [[0]]
    rest = [asyncio.ensure_future(batcher.call(i)) for i in range(1, 6)]
    await settle()
    assert send.batches == [[0]]  # still one in flight
    send.gate.set()
    assert await first == "ok:0"
    assert await asyncio.gather(*rest) == [f"ok:{i}" for i in range(1, 6)]
    assert send.batches == [[0], [1, 2, 3, 4, 5]]


async def test_no_more_than_max_in_flight_batches_and_max_batch_items_each():
    send = GatedSend()
    send.gate.clear()
    batcher = Batcher(send, max_in_flight=2, max_batch=3)
    calls = []
    for i in range(10):
        calls.append(asyncio.ensure_future(batcher.call(i)))
        await settle()
    assert send.most_in_flight == 2
    send.gate.set()
    assert await asyncio.gather(*calls) == [f"ok:{i}" for i in range(10)]
    assert all(len(b) <= 3 for b in send.batches)
    assert sorted(i for b in send.batches for i in b) == list(range(10))  # each sent exactly once


async def test_an_error_result_fails_only_its_own_caller():
    send = GatedSend(results=lambda items: [ValueError(f"bad {i}") if i == 2 else i * 10 for i in items])
    send.gate.clear()
    batcher = Batcher(send, max_in_flight=1)
    blocker = asyncio.ensure_future(batcher.call(0))
    await settle()
    calls = [asyncio.ensure_future(batcher.call(i)) for i in (1, 2, 3)]
    await settle()
    send.gate.set()
    results = await asyncio.gather(blocker, *calls, return_exceptions=True)
    assert results[0] == 0 and results[1] == 10 and results[3] == 30
    assert isinstance(results[2], ValueError) and str(results[2]) == "bad 2"


async def test_a_failed_send_fails_every_item_of_its_batch_and_the_batcher_recovers():
    attempts = []

    async def flaky(items):
        attempts.append(list(items))
        if len(attempts) == 1:
            raise ConnectionError("down")
        return [i for i in items]

    batcher = Batcher(flaky)
    with pytest.raises(ConnectionError):
        await batcher.call(1)
    assert await batcher.call(2) == 2


async def test_a_wrong_number_of_results_is_an_error_not_a_misdelivery():
    async def short(items):
        return items[:-1]

    with pytest.raises(RuntimeError, match="results for"):
        await Batcher(short).call(1)


async def test_submitted_items_are_sent_by_flush_and_their_failures_reported():
    lost: list = []
    send = GatedSend(results=lambda items: [KeyError(i) if i % 2 else None for i in items])
    send.gate.clear()
    batcher = Batcher(send, on_error=lambda items, exc: lost.extend(items))
    for i in range(6):
        await batcher.submit(i)  # returns without waiting for the send
    assert lost == []
    flushing = asyncio.ensure_future(batcher.flush())
    await settle()
    assert not flushing.done()
    send.gate.set()
    await flushing
    assert sorted(i for b in send.batches for i in b) == list(range(6))
    assert sorted(lost) == [1, 3, 5]
    assert batcher.queued == 0


async def test_submit_waits_when_the_queue_is_over_its_bound():
    send = GatedSend()
    send.gate.clear()
    batcher = Batcher(send, max_in_flight=1, max_queued=3)
    await batcher.submit(0)
    await settle()  # 0 is in flight
    for i in (1, 2, 3):
        await batcher.submit(i)
    over = asyncio.ensure_future(batcher.submit(4))
    await settle()
    assert not over.done()  # backpressure: waits for the queue to drain
    send.gate.set()
    await over
    assert sorted(i for b in send.batches for i in b) == [0, 1, 2, 3, 4]


async def test_a_cancelled_caller_item_is_still_sent():
    send = GatedSend()
    send.gate.clear()
    batcher = Batcher(send, max_in_flight=1)
    blocker = asyncio.ensure_future(batcher.call(0))
    await settle()
    gone = asyncio.ensure_future(batcher.call(1))
    await settle()
    gone.cancel()
    send.gate.set()
    await blocker
    await batcher.flush()
    assert [1] in send.batches


def test_limits_must_be_positive():
    async def send(items):
        return items

    with pytest.raises(ValueError):
        Batcher(send, max_batch=0)
    with pytest.raises(ValueError):
        Batcher(send, max_in_flight=0)


# -- linger: what nobody awaits waits for company -------------------------------------------------


class SteppedSleep:
    """An injected sleep that ends only when the test says so."""

    def __init__(self) -> None:
        self.sleeping: list[asyncio.Future] = []

    async def __call__(self, seconds: float) -> None:
        wake = asyncio.get_running_loop().create_future()
        self.sleeping.append(wake)
        await wake

    def wake_all(self) -> None:
        for wake in self.sleeping:
            if not wake.done():
                wake.set_result(None)


async def test_submitted_items_linger_and_go_as_one_batch():
    send, sleep = GatedSend(), SteppedSleep()
    batcher = Batcher(send, linger_s=0.1, sleep=sleep)
    for i in range(20):
        await batcher.submit(i)
    await settle()
    assert send.batches == [] and len(sleep.sleeping) == 1  # one sender, lingering
    sleep.wake_all()
    await settle()
    assert send.batches == [list(range(20))]


async def test_an_awaited_call_a_full_batch_or_a_flush_cuts_the_linger_short():
    send, sleep = GatedSend(), SteppedSleep()
    batcher = Batcher(send, linger_s=10.0, sleep=sleep, max_batch=5)
    await batcher.submit("a")
    await settle()
    assert await asyncio.wait_for(batcher.call("b"), 1) == "ok:b"  # someone waits: no lingering
    assert send.batches == [["a", "b"]]
    for i in range(5):
        await batcher.submit(i)
    await settle()
    assert send.batches[-1] == [0, 1, 2, 3, 4]  # a full batch goes at once
    await batcher.submit("late")
    await settle()
    assert send.batches[-1] != ["late"]
    await asyncio.wait_for(batcher.flush(), 1)
    assert send.batches[-1] == ["late"]


def test_linger_must_not_be_negative():
    with pytest.raises(ValueError):
        Batcher(GatedSend(), linger_s=-1)


async def test_what_arrives_during_a_delivery_lingers_too():
    """Not sent the moment the batch before it returns: a loaded replica still sends a few
    large batches a second, not one per delivery."""
    send, sleep = GatedSend(), SteppedSleep()
    send.gate.clear()
    batcher = Batcher(send, linger_s=0.25, sleep=sleep)
    await batcher.submit("first")
    await settle()
    sleep.wake_all()
    await settle()  # "first" is being delivered (the gate holds it)
    for i in range(3):
        await batcher.submit(i)
    await settle()
    send.gate.set()
    await settle()
    assert send.batches == [["first"]]  # 0, 1, 2 wait for company
    assert sum(not w.done() for w in sleep.sleeping) == 1  # exactly one sender lingers
    for i in range(3, 5):
        await batcher.submit(i)
    sleep.wake_all()
    await settle()
    assert send.batches == [["first"], [0, 1, 2, 3, 4]]
    await asyncio.wait_for(batcher.flush(), 1)
