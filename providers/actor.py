"""ProviderActor: one named async Ray actor per platform. It owns the platform's HTTP client
and (issue 4) its per-model limits and breakers, and makes the upstream call itself, so one
actor hop covers one attempt and the platform's protection is exact cluster-wide.

The actor returns values, never raises, for expected outcomes: a `ChatResponse` or a
`ProviderError` (the taxonomy in providers/types.py).
"""
from __future__ import annotations

import os
import time
from typing import Any

from providers.catalog import ModelSpec
from providers.clock import SYSTEM_CLOCK, Clock
from providers.endpoints import SIMULATOR_KEY
from providers.transport import Transport, new_http_client
from providers.wire import Endpoint
from providers.types import (
    ChatRequest,
    ChatResponse,
    ModelNotFoundError,
    ProviderError,
    UpstreamTimeoutError,
)
from runtime.config import Config


def provider_actor_name(platform: str) -> str:
    return f"provider:{platform}"


def provider_actor_options(platform: str, namespace: str) -> dict[str, Any]:
    return {
        "name": provider_actor_name(platform),
        "namespace": namespace,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,  # a provider call is not idempotent: never replay it
        "num_cpus": 0,
        "max_concurrency": 1000,
    }


class ProviderActor:
    """Plain class; `ray.remote(ProviderActor).options(**provider_actor_options(...))` makes the
    actor. Usable without Ray in tests."""

    def __init__(
        self,
        platform: str,
        config: Config,
        base_url: str,
        simulated: bool = False,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        entry = config.providers[platform]
        # The key is read here, in the actor's own process environment; it never travels as an
        # argument and never leaves this object (Endpoint.api_key has repr=False).
        api_key = SIMULATOR_KEY if simulated else os.environ.get(entry.api_key_env, "")
        self.platform = platform
        self.simulated = simulated
        self.endpoint = Endpoint(
            platform=platform,
            protocol=entry.protocol,
            base_url=base_url,
            api_key=api_key,
            timeout_s=entry.timeout_s,
            connect_timeout_s=entry.connect_timeout_s,
        )
        catalog = config.catalog()
        self.models: dict[str, ModelSpec] = {m.id: m for m in catalog if m.platform == platform}
        self._clock = clock
        self._transport = Transport(self.endpoint, new_http_client())
        self._counters = {"requests": 0, "ok": 0, "errors": 0}

    async def ready(self) -> dict[str, Any]:
        return {"platform": self.platform, "simulated": self.simulated}

    async def complete(self, request: ChatRequest, deadline: float) -> ChatResponse | ProviderError:
        """One admitted attempt on `request.model` (a catalog id of this platform), to be
        finished before `deadline` (wall-clock seconds)."""
        spec = self.models.get(request.model)
        if spec is None:
            return ModelNotFoundError(
                f"{request.model!r} is not a model of {self.platform}",
                platform=self.platform,
                model=request.model,
            )
        budget_s = deadline - self._clock.time()
        if budget_s <= 0:
            return UpstreamTimeoutError("deadline passed before the call", platform=self.platform, model=spec.id)
        self._counters["requests"] += 1
        try:
            response, _headers = await self._transport.complete(request, spec.id, budget_s)
        except ProviderError as err:
            self._counters["errors"] += 1
            return err
        self._counters["ok"] += 1
        return response

    async def stream(self, request: ChatRequest, deadline: float, idle_timeout_s: float = 30.0):
        """Stream one attempt as `StreamEvent`s. Ends with a `done` event, or with a
        `ProviderError` value as the last item (never raises for upstream failures)."""
        spec = self.models.get(request.model)
        if spec is None:
            yield ModelNotFoundError(
                f"{request.model!r} is not a model of {self.platform}", platform=self.platform, model=request.model
            )
            return
        budget_s = deadline - self._clock.time()
        if budget_s <= 0:
            yield UpstreamTimeoutError("deadline passed before the call", platform=self.platform, model=spec.id)
            return
        self._counters["requests"] += 1
        try:
            async for event in self._transport.stream(request, spec.id, budget_s, idle_timeout_s):
                yield event
        except ProviderError as err:
            self._counters["errors"] += 1
            yield err
            return
        self._counters["ok"] += 1

    async def status(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "simulated": self.simulated,
            "base_url": self.endpoint.base_url,
            "key_configured": bool(self.endpoint.api_key),
            "models": sorted(self.models),
            "counters": dict(self._counters),
            "time": time.time(),
        }
