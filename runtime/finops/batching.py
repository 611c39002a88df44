"""Coalesce many small calls into few batched ones (no Ray here: the caller supplies `send`).

Used by the ledger client: each request makes one admission and one final write, and an actor
call costs the caller about the same CPU whatever its payload, so under load a replica sends
whatever has queued while earlier batches were in flight as one call. What someone awaits goes
out at once (an idle gateway sees no added latency); what nobody awaits (final rows, journaled
pending rows) may wait up to `linger_s` for company, so the ledger sees a few large batches a
second, not one per request.
"""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Generic, Sequence, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Send = Callable[[list[T]], Awaitable[Sequence[Any]]]
OnError = Callable[[list[T], BaseException], None]
OnSent = Callable[[list[T]], None]


@dataclass(slots=True)
class _Entry(Generic[T]):
    item: T
    future: asyncio.Future | None = field(default=None, repr=False)  # None: nobody awaits it


class Batcher(Generic[T, R]):
    """`call(item)` awaits the item's own result; `submit(item)` queues it and returns (its
    failure goes to `on_error`, its success to `on_sent`); `flush()` returns once everything queued before it has been
    sent and answered.

    `send(items)` returns one result per item, in order; a result that is an exception is
    raised to that item's caller alone. If `send` itself raises, every item of the batch fails
    with that error. At most `max_in_flight` batches are outstanding; each takes up to
    `max_batch` items. `submit` applies backpressure: beyond `max_queued` waiting items it
    waits for the queue to drain."""

    def __init__(
        self,
        send: Send[T],
        *,
        max_batch: int = 256,
        max_in_flight: int = 2,
        max_queued: int = 10_000,
        on_error: OnError[T] | None = None,
        on_sent: OnSent[T] | None = None,
        linger_s: float = 0.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1 or linger_s < 0:
            raise ValueError("max_batch and max_in_flight must be at least 1, linger_s >= 0")
        self._send = send
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._max_queued = max_queued
        self._on_error = on_error
        self._on_sent = on_sent
        self._linger_s = linger_s
        self._sleep = sleep
        self._wake: asyncio.Future[None] | None = None
        self._queue: deque[_Entry[T]] = deque()
        self._senders: set[asyncio.Task[None]] = set()
        self._starting = 0  # senders created but not yet running: they will take the queue
        self.batches_sent = 0
        self.items_sent = 0

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def call(self, item: T) -> R:
        future = asyncio.get_running_loop().create_future()
        self._enqueue(_Entry(item, future))
        return await future

    async def submit(self, item: T) -> None:
        self._enqueue(_Entry(item))
        if len(self._queue) > self._max_queued:
            await self.flush()

    async def flush(self) -> None:
        self._hurry()
        while self._senders:
            await asyncio.gather(*list(self._senders), return_exceptions=True)

    def _hurry(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _enqueue(self, entry: _Entry[T]) -> None:
        self._queue.append(entry)
        if entry.future is not None or len(self._queue) >= self._max_batch:
            self._hurry()  # someone waits for it, or a batch is full: no lingering
        if self._starting == 0 and self._wake is None and len(self._senders) < self._max_in_flight:
            self._starting += 1
            task = asyncio.get_running_loop().create_task(self._drain())
            self._senders.add(task)
            task.add_done_callback(self._senders.discard)

    async def _drain(self) -> None:
        """Send batches while there is a queue, lingering before each one that may wait. One
        sender lingers at a time: a sender that finds another gathering the queue leaves it
        to that one (so what arrives during a delivery waits for company too)."""
        starting = True  # counted in `_starting` until it lingers or sends: no sender is added
        try:
            while self._queue:
                if self._may_linger():
                    if self._wake is not None:
                        return  # another sender is gathering the next batch
                    await self._linger()
                if starting:
                    self._starting, starting = self._starting - 1, False
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
                await self._deliver(batch)
        finally:
            if starting:
                self._starting -= 1

    def _may_linger(self) -> bool:
        return self._linger_s > 0 and len(self._queue) < self._max_batch \
            and not any(e.future is not None for e in self._queue)

    async def _linger(self) -> None:
        """Wait up to `linger_s` for company (cut short by `flush`, a full batch or a caller
        who awaits its result)."""
        self._wake = asyncio.get_running_loop().create_future()
        sleeper = asyncio.ensure_future(self._sleep(self._linger_s))
        try:
            await asyncio.wait({sleeper, self._wake}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            self._wake = None

    async def _deliver(self, batch: list[_Entry[T]]) -> None:
        items = [e.item for e in batch]
        try:
            results = list(await self._send(items))
            if len(results) != len(batch):
                raise RuntimeError(f"send returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - delivered to every item of the batch
            results = [exc] * len(batch)
            if not isinstance(exc, Exception):
                self._settle(batch, results)
                raise
        self.batches_sent += 1
        self.items_sent += len(batch)
        self._settle(batch, results)

    def _settle(self, batch: list[_Entry[T]], results: list[Any]) -> None:
        unawaited: list[T] = []
        sent: list[T] = []
        error: BaseException | None = None
        for entry, result in zip(batch, results):
            failed = isinstance(result, BaseException)
            if entry.future is None:
                if failed:
                    unawaited.append(entry.item)
                    error = result
                else:
                    sent.append(entry.item)
            elif not entry.future.done():  # a cancelled caller: its item was sent anyway
                if failed:
                    entry.future.set_exception(result)
                else:
                    entry.future.set_result(result)
        if unawaited and self._on_error is not None and error is not None:
            self._on_error(unawaited, error)
        if sent and self._on_sent is not None:
            self._on_sent(sent)
