"""Clocks for the protection tests: both count their sleeps, so a test can prove a waiter slept
once for the computed time instead of polling."""
from __future__ import annotations

import asyncio

import pytest

from providers.clock import FakeClock


class CountingClock(FakeClock):
    """FakeClock (sleep advances at once) that records every sleep."""

    def __init__(self, start: float = 1_000.0) -> None:
        super().__init__(start)
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


class SteppedClock(CountingClock):
    """A clock whose sleep blocks until the test advances time past its end, so a sleeper can
    be woken by something else first."""

    def __init__(self, start: float = 1_000.0) -> None:
        super().__init__(start)
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.monotonic() + seconds, wake))
        await wake

    def advance(self, seconds: float) -> None:
        super().advance(seconds)
        for until, wake in self._sleepers:
            if until <= self.monotonic() and not wake.done():
                wake.set_result(None)
        self._sleepers = [(u, w) for u, w in self._sleepers if not w.done()]


@pytest.fixture
def counting_clock() -> CountingClock:
    return CountingClock()


@pytest.fixture
def stepped_clock() -> SteppedClock:
    return SteppedClock()
