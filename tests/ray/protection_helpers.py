"""Helpers for the provider-protection tests against the simulator: a tight test config, the
simulator's admin endpoints, a sliding-window count over its request log, and a provider pool
that times each step of a route."""
from __future__ import annotations

import time
from bisect import bisect_left
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import yaml

from providers.types import ChatRequest, ChatResponse, Message, ProviderError
from providers.settings import DEFAULT_CONFIG_PATH
from runtime.core.router import Router
from runtime.core.routing import RoutePlan, Step

UNLIMITED_RPM = 1_000_000
UNLIMITED_TPM = 1_000_000_000


def write_test_config(path: Path, *, window_scale: float, tight_rpm: dict[tuple[str, str], int]) -> Path:
    """The shipped config with every model effectively unlimited (no requests/day: its window
    would outlast the module) except the (platform, model) pairs in `tight_rpm`, and every limit
    window shrunk by `window_scale`."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    for model in data["models"]:
        model.pop("rpd", None)
        model["tpm"] = UNLIMITED_TPM
        model["rpm"] = tight_rpm.get((model["platform"], model["id"]), UNLIMITED_RPM)
    data["protection"]["window_scale"] = window_scale
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


class SimAdmin:
    """The simulator's `/_sim` endpoints (loopback)."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10.0, trust_env=False)

    def reset(self) -> None:
        self._http.post("/_sim/reset").raise_for_status()

    def fault(self, **rule: Any) -> None:
        self._http.post("/_sim/faults", json=rule).raise_for_status()

    def requests(self, platform: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        params = {"platform": platform} if platform else {}
        rows = self._http.get("/_sim/requests", params=params).raise_for_status().json()["requests"]
        return [r for r in rows if model is None or r["model"] == model]

    def close(self) -> None:
        self._http.close()


def max_in_any_window(times: list[float], window_s: float) -> int:
    """The largest number of `times` inside any half-open window [t, t + window_s)."""
    ts = sorted(times)
    return max((bisect_left(ts, t + window_s) - i for i, t in enumerate(ts)), default=0)


def plan(name: str, config, *steps: tuple[str, str]) -> RoutePlan:
    catalog = config.catalog()
    return RoutePlan(name, tuple(Step(p, catalog.resolve(m, p)) for p, m in steps))


def chat(text: str = "hello there", max_tokens: int = 16) -> ChatRequest:
    return ChatRequest((Message("user", text),), max_tokens=max_tokens)


def deadline_in(seconds: float) -> float:
    return time.time() + seconds


class TimedPool:
    """Wraps a provider pool; records, per request id, each step's platform, duration and result
    kind, so a test can split a route's time into the refused steps and the serving call."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: dict[str, list[tuple[str, float, str]]] = defaultdict(list)

    async def complete(self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False,
                       retry: bool = True) -> ChatResponse | ProviderError:
        started = time.perf_counter()
        result = await self.inner.complete(platform, request, deadline, wait=wait, retry=retry)
        kind = "ok" if isinstance(result, ChatResponse) else result.kind
        self.calls[request.request_id].append((platform, time.perf_counter() - started, kind))
        return result

    def stream(self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False):
        return self.inner.stream(platform, request, deadline, wait=wait)


def timed_router(pool: Any) -> tuple[Router, TimedPool]:
    timed = TimedPool(pool)
    return Router(timed), timed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
