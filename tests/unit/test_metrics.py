"""BufferedMetrics: the request path adds to local sums only; a flush hands the sink one call
per series with the totals, and the next flush starts from zero."""
from __future__ import annotations

import asyncio

import pytest

from providers.clock import FakeClock
from runtime.metrics import BufferedMetrics, flush_forever


class Sink:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def requests(self, endpoint, status, count, latencies_ms):
        self.calls.append(("requests", endpoint, status, count, tuple(latencies_ms)))

    def upstream(self, platform, model, input_tokens, output_tokens, cost_usd, fallbacks):
        self.calls.append(("upstream", platform, model, input_tokens, output_tokens, round(cost_usd, 9), fallbacks))

    def errors(self, kind, platform, count):
        self.calls.append(("errors", kind, platform, count))

    def cache(self, result, kind, count, saved_usd):
        self.calls.append(("cache", result, kind, count, round(saved_usd, 9)))


def test_nothing_reaches_the_sink_before_a_flush_and_a_flush_sends_one_call_per_series():
    sink = Sink()
    metrics = BufferedMetrics(sink)
    for latency in (1.0, 2.0, 3.0):
        metrics.request("/v1/chat/completions", 200, latency)
    metrics.request("/v1/chat/completions", 429, 0.5)
    metrics.upstream("openai", "gpt-4o-mini", 10, 5, 0.001, False)
    metrics.upstream("openai", "gpt-4o-mini", 20, 7, 0.002, True)
    metrics.error("server_error", "groq")
    metrics.error("server_error", "groq")
    metrics.cache(True, "exact", 0.01)
    metrics.cache(False, "exact", 0.0)
    assert sink.calls == []
    metrics.flush()
    assert sorted(sink.calls) == sorted([
        ("requests", "/v1/chat/completions", 200, 3, (1.0, 2.0, 3.0)),
        ("requests", "/v1/chat/completions", 429, 1, (0.5,)),
        ("upstream", "openai", "gpt-4o-mini", 30, 12, 0.003, 1),
        ("errors", "server_error", "groq", 2),
        ("cache", "hit", "exact", 1, 0.01),
        ("cache", "miss", "exact", 1, 0.0),
    ])
    sink.calls.clear()
    metrics.flush()
    assert sink.calls == []  # each sum is sent once


def test_the_flusher_flushes_on_its_interval_and_survives_a_failing_sink():
    clock = FakeClock()
    flushes: list[float] = []

    def flush() -> None:
        flushes.append(clock.monotonic())
        if len(flushes) == 1:
            raise RuntimeError("sink down")

    async def main() -> None:
        task = asyncio.ensure_future(flush_forever(flush, clock.sleep, every_s=1.0))
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert len(flushes) >= 3 and flushes[1] - flushes[0] == pytest.approx(1.0)
