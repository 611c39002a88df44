"""Gateway metrics on Ray's metrics system (`ray.util.metrics`), so they appear on Ray's
Prometheus endpoint and the Ray dashboard. All names start with `switchboard_`.

The request path records into `BufferedMetrics` (plain dict additions, no Ray call); a
background task hands the sums to `GatewayMetrics` (the Ray metrics) every `FLUSH_S`.
`NullMetrics` is the stand-in where Ray is not running (unit tests)."""
from __future__ import annotations

from collections import defaultdict
from typing import Awaitable, Callable, Protocol

import structlog

#: seconds between flushes of the buffered request-path metrics (Ray exports every few seconds)
FLUSH_S = 1.0

LATENCY_BOUNDARIES_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000]

BREAKER_STATE_VALUE = {"closed": 0, "half_open": 1, "open": 2}


class Metrics(Protocol):
    def request(self, endpoint: str, status: int, latency_ms: float) -> None: ...
    def upstream(self, platform: str, model: str, input_tokens: int, output_tokens: int,
                 cost_usd: float, fallback: bool) -> None: ...
    def error(self, kind: str, platform: str) -> None: ...
    def cache(self, hit: bool, kind: str, saved_usd: float) -> None: ...


class NullMetrics:
    def request(self, endpoint, status, latency_ms) -> None:
        pass

    def upstream(self, platform, model, input_tokens, output_tokens, cost_usd, fallback) -> None:
        pass

    def error(self, kind, platform) -> None:
        pass

    def cache(self, hit, kind, saved_usd) -> None:
        pass


class GatewayMetrics:
    """Request-path metrics on Ray's metrics system, recorded in batches by `BufferedMetrics`."""

    def __init__(self) -> None:
        from ray.util.metrics import Counter, Histogram

        self._requests = Counter("switchboard_requests_total", "HTTP requests", tag_keys=("endpoint", "status"))
        self._latency = Histogram(
            "switchboard_request_latency_ms", "End-to-end request latency (ms)",
            boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("endpoint",),
        )
        self._tokens = Counter("switchboard_tokens_total", "Tokens", tag_keys=("platform", "model", "direction"))
        self._cost = Counter("switchboard_cost_usd_total", "Spend in USD", tag_keys=("platform", "model"))
        self._fallbacks = Counter("switchboard_fallbacks_total", "Requests served by a fallback", tag_keys=("platform",))
        self._errors = Counter("switchboard_errors_total", "Upstream errors by class", tag_keys=("kind", "platform"))
        self._cache = Counter("switchboard_cache_lookups_total", "Cache lookups", tag_keys=("result", "kind"))
        self._saved = Counter("switchboard_cache_saved_usd_total", "USD saved by cache hits")

    def requests(self, endpoint: str, status: int, count: int, latencies_ms: list[float]) -> None:
        self._requests.inc(count, {"endpoint": endpoint, "status": str(status)})
        tags = {"endpoint": endpoint}
        for latency_ms in latencies_ms:
            self._latency.observe(latency_ms, tags)

    def upstream(self, platform: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float,
                 fallbacks: int) -> None:
        tags = {"platform": platform, "model": model}
        if input_tokens:
            self._tokens.inc(input_tokens, {**tags, "direction": "in"})
        if output_tokens:
            self._tokens.inc(output_tokens, {**tags, "direction": "out"})
        if cost_usd > 0:
            self._cost.inc(cost_usd, tags)
        if fallbacks:
            self._fallbacks.inc(fallbacks, {"platform": platform})

    def errors(self, kind: str, platform: str, count: int) -> None:
        self._errors.inc(count, {"kind": kind, "platform": platform or "none"})

    def cache(self, result: str, kind: str, count: int, saved_usd: float) -> None:
        self._cache.inc(count, {"result": result, "kind": kind})
        if saved_usd > 0:
            self._saved.inc(saved_usd)


class BufferedMetrics:
    """`Metrics` for the request path: sums in local dicts, handed to the sink by `flush()`.
    Single-threaded (one event loop), so no lock; a flush swaps the dicts out first."""

    def __init__(self, sink: GatewayMetrics) -> None:
        self._sink = sink
        self._take()

    def _take(self) -> tuple[dict, dict, dict, dict]:
        taken = (getattr(self, "_requests", {}), getattr(self, "_upstream", {}),
                 getattr(self, "_errors", {}), getattr(self, "_cache", {}))
        self._requests: dict[tuple[str, int], list[float]] = defaultdict(list)
        self._upstream: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0])
        self._errors: dict[tuple[str, str], int] = defaultdict(int)
        self._cache: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        return taken

    def request(self, endpoint: str, status: int, latency_ms: float) -> None:
        self._requests[(endpoint, status)].append(latency_ms)

    def upstream(self, platform: str, model: str, input_tokens: int, output_tokens: int,
                 cost_usd: float, fallback: bool) -> None:
        sums = self._upstream[(platform, model)]
        sums[0] += input_tokens
        sums[1] += output_tokens
        sums[2] += cost_usd
        sums[3] += 1 if fallback else 0

    def error(self, kind: str, platform: str) -> None:
        self._errors[(kind, platform)] += 1

    def cache(self, hit: bool, kind: str, saved_usd: float) -> None:
        sums = self._cache[("hit" if hit else "miss", kind)]
        sums[0] += 1
        sums[1] += saved_usd if hit else 0.0

    def flush(self) -> None:
        requests, upstream, errors, cache = self._take()
        sink = self._sink
        for (endpoint, status), latencies in requests.items():
            sink.requests(endpoint, status, len(latencies), latencies)
        for (platform, model), (tokens_in, tokens_out, cost, fallbacks) in upstream.items():
            sink.upstream(platform, model, int(tokens_in), int(tokens_out), cost, int(fallbacks))
        for (kind, platform), count in errors.items():
            sink.errors(kind, platform, count)
        for (result, kind), (count, saved) in cache.items():
            sink.cache(result, kind, int(count), saved)


async def flush_forever(flush: Callable[[], None], sleep: Callable[[float], Awaitable[None]],
                        every_s: float = FLUSH_S) -> None:
    """The background task that flushes buffered metrics (never dies of a failed flush)."""
    log = structlog.get_logger("switchboard.metrics")
    while True:
        await sleep(every_s)
        try:
            flush()
        except Exception:  # noqa: BLE001
            log.exception("metrics.flush_failed")


class ProviderMetrics:
    """Per-model protection state, recorded by each ProviderActor."""

    def __init__(self) -> None:
        from ray.util.metrics import Gauge

        self._breaker = Gauge(
            "switchboard_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
            tag_keys=("platform", "model"),
        )
        self._headroom = Gauge(
            "switchboard_limit_headroom", "Remaining capacity per limit dimension",
            tag_keys=("platform", "model", "dimension"),
        )

    def breaker(self, platform: str, model: str, state: str) -> None:
        self._breaker.set(BREAKER_STATE_VALUE.get(state, -1), {"platform": platform, "model": model})

    def headroom(self, platform: str, model: str, dimension: str, remaining: float) -> None:
        self._headroom.set(remaining, {"platform": platform, "model": model, "dimension": dimension})
