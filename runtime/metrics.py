"""Gateway metrics on Ray's metrics system (`ray.util.metrics`), so they appear on Ray's
Prometheus endpoint and the Ray dashboard. All names start with `switchboard_`.

`GatewayMetrics` is created per process (replica or actor); `NullMetrics` is the stand-in where
Ray is not running (unit tests)."""
from __future__ import annotations

from typing import Protocol

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
    """Request-path metrics, recorded in the ingress replica."""

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

    def request(self, endpoint: str, status: int, latency_ms: float) -> None:
        self._requests.inc(1, {"endpoint": endpoint, "status": str(status)})
        self._latency.observe(latency_ms, {"endpoint": endpoint})

    def upstream(self, platform, model, input_tokens, output_tokens, cost_usd, fallback) -> None:
        tags = {"platform": platform, "model": model}
        if input_tokens:
            self._tokens.inc(input_tokens, {**tags, "direction": "in"})
        if output_tokens:
            self._tokens.inc(output_tokens, {**tags, "direction": "out"})
        if cost_usd > 0:
            self._cost.inc(cost_usd, tags)
        if fallback:
            self._fallbacks.inc(1, {"platform": platform})

    def error(self, kind: str, platform: str) -> None:
        self._errors.inc(1, {"kind": kind, "platform": platform or "none"})

    def cache(self, hit: bool, kind: str, saved_usd: float) -> None:
        self._cache.inc(1, {"result": "hit" if hit else "miss", "kind": kind})
        if hit and saved_usd > 0:
            self._saved.inc(saved_usd)


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
