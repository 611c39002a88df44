"""ProviderActor: one named async Ray actor per platform. It owns the platform's HTTP client,
its per-model limits and breakers (providers/guard.py), the one retry loop and the retry budget,
and makes the upstream call itself: one actor hop per request, protection exact cluster-wide.

Expected outcomes are values, never exceptions: a `ChatResponse`, a `ProviderError` (upstream
failure after retries), or a `Refusal` (not sent: rate-limited until t, breaker open until t,
key disabled). The router skips refusals at once.
"""
from __future__ import annotations

import os
import random
from dataclasses import replace
from typing import Any

import structlog
import structlog.contextvars

from providers.breaker import BreakerConfig
from providers.catalog import ModelSpec
from providers.clock import SYSTEM_CLOCK, Clock
from providers.endpoints import SIMULATOR_KEY
from providers.guard import Admission, ModelGuard
from providers.retry import RetryBudget, RetryPolicy
from providers.secret import Secret
from providers.settings import PlatformSettings
from providers.tokens import reservation_tokens, warm_up
from providers.transport import Transport, new_http_client
from providers.types import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ChatResponse,
    ModelNotFoundError,
    OutOfCreditError,
    PlatformDisabledRefusal,
    ProviderError,
    Refusal,
    UpstreamTimeoutError,
)
from providers.wire.base import Endpoint
from providers.wire.ratelimit import parse_rate_limit_headers
from providers.named_actor import named_actor_options


def provider_actor_name(platform: str) -> str:
    return f"provider:{platform}"


def provider_actor_options(platform: str, namespace: str) -> dict[str, Any]:
    return named_actor_options(provider_actor_name(platform), namespace)


def _was_restarted() -> bool:
    try:
        import ray

        return ray.get_runtime_context().was_current_actor_reconstructed
    except Exception:  # not inside a Ray actor (unit tests)
        return False


def bind_request(request: ChatRequest, platform: str) -> None:
    """Every log line of this call carries the gateway's request id (each actor call runs in its
    own asyncio task, so the binding is per call)."""
    structlog.contextvars.bind_contextvars(request_id=request.request_id, platform=platform, model=request.model)


class ProviderActor:
    """Plain class; `ray.remote(ProviderActor).options(**provider_actor_options(...))` makes the
    actor. Usable without Ray in tests."""

    def __init__(
        self,
        settings: PlatformSettings,
        base_url: str,
        simulated: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        restarted: bool | None = None,
        api_key: Secret | None = None,
    ) -> None:
        platform, entry = settings.platform, settings.entry
        # The key comes masked from the driver, or from the actor's own environment; it never
        # leaves this object (Endpoint.api_key has repr=False).
        if simulated:
            api_key_value = SIMULATOR_KEY
        elif api_key is not None:
            api_key_value = api_key.reveal()
        else:
            api_key_value = os.environ.get(entry.api_key_env, "")
        self.platform = platform
        self.simulated = simulated
        self.endpoint = Endpoint(platform, entry.protocol, base_url, api_key_value, entry.timeout_s, entry.connect_timeout_s)
        self._clock = clock
        self._default_max_tokens = settings.default_max_tokens
        p = settings.protection
        settle = p.settle_on_restart and (_was_restarted() if restarted is None else restarted)
        breaker = BreakerConfig(**p.breaker.model_dump())
        self.models: dict[str, ModelSpec] = {m.id: m for m in settings.models}
        self.guards = {
            m.id: ModelGuard(m, clock, window_scale=p.window_scale, guard_s=p.guard_s, breaker=breaker, settle=settle)
            for m in self.models.values()
        }
        self.retry = RetryPolicy(p.retry.max_attempts, p.retry.base_s, p.retry.cap_s, random.Random())
        self.retry_budget = RetryBudget(p.retry.budget_ratio, p.retry.budget_min_retries, p.retry.budget_window_s)
        self.disabled: ProviderError | None = None
        self._transport = Transport(self.endpoint, new_http_client())
        self._counters = {"requests": 0, "upstream_attempts": 0, "ok": 0, "errors": 0, "refused": 0, "retries": 0}
        self.settled_on_start = settle
        warm_up()

    async def ready(self) -> dict[str, Any]:
        return {"platform": self.platform, "simulated": self.simulated}

    # -- admission ---------------------------------------------------------------------------

    def _precheck(self, request: ChatRequest, deadline: float) -> ProviderError | None:
        if request.model not in self.models:
            return ModelNotFoundError(f"{request.model!r} is not a model of {self.platform}",
                                      platform=self.platform, model=request.model)
        if self.disabled is not None:
            return PlatformDisabledRefusal(
                f"{self.platform} key disabled after {self.disabled.kind}: {self.disabled.message}",
                platform=self.platform, model=request.model)
        return None

    def _on_error(self, guard: ModelGuard, admission: Admission, err: ProviderError, used: int | None = None) -> None:
        guard.failed(admission, err, used)
        self._counters["errors"] += 1
        if isinstance(err, (AuthenticationError, OutOfCreditError)) and not self.disabled:
            self.disabled = err
            structlog.get_logger("switchboard.provider").error(
                "platform_key_disabled", platform=self.platform, kind=err.kind, message=err.message,
                action="fix the key or credit, then POST /api/ai/providers/{platform}/enable")

    def _refused(self, refusal: Refusal) -> Refusal:
        self._counters["refused"] += 1
        return refusal

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, deadline: float, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        """Admit, call, retry (full jitter, Retry-After as a minimum, within the deadline and
        the retry budget), reconcile. `deadline` is wall-clock seconds. `wait`: wait for
        capacity instead of refusing; `retry=False`: one attempt (the router has a fallback)."""
        bind_request(request, self.platform)
        early = self._precheck(request, deadline)
        if early is not None:
            return self._refused(early) if isinstance(early, Refusal) else early
        spec, guard = self.models[request.model], self.guards[request.model]
        tokens = reservation_tokens(request, spec, self._default_max_tokens)
        self._counters["requests"] += 1
        self.retry_budget.record_request(self._clock.monotonic())
        attempt, last_error = 0, None
        while True:
            attempt += 1
            admission = await guard.admit(tokens, deadline, wait=wait)
            if isinstance(admission, Refusal):
                return last_error or self._refused(admission)
            budget_s = deadline - self._clock.time()
            if budget_s <= 0:
                guard.abandoned(admission)
                return last_error or UpstreamTimeoutError(
                    "deadline passed before the call", platform=self.platform, model=spec.id, attempts=0)
            self._counters["upstream_attempts"] += 1
            try:
                response, headers = await self._transport.complete(request, spec.id, budget_s)
            except ProviderError as err:
                self._on_error(guard, admission, err)
                err.attempts = attempt
                last_error = err
                delay = self.retry.next_delay(attempt, err, self._clock.time(), deadline) if retry else None
                if delay is None or not self.retry_budget.try_spend_retry(self._clock.monotonic()):
                    return err
                self._counters["retries"] += 1
                await self._clock.sleep(delay)
                continue
            guard.succeeded(admission, response.usage.total_tokens, parse_rate_limit_headers(headers, self._clock.time()))
            self._counters["ok"] += 1
            return replace(response, attempts=attempt)

    async def stream(self, request: ChatRequest, deadline: float, wait: bool = False, idle_timeout_s: float = 30.0):
        """Stream one attempt as `StreamEvent`s, ending with a `done` event, or with a
        `ProviderError`/`Refusal` value as the last item (never raises for upstream failures).
        No retries here: before the first event the router falls back instead."""
        bind_request(request, self.platform)
        early = self._precheck(request, deadline)
        if early is not None:
            yield self._refused(early) if isinstance(early, Refusal) else early
            return
        spec, guard = self.models[request.model], self.guards[request.model]
        self._counters["requests"] += 1
        admission = await guard.admit(reservation_tokens(request, spec, self._default_max_tokens), deadline, wait=wait)
        if isinstance(admission, Refusal):
            yield self._refused(admission)
            return
        self._counters["upstream_attempts"] += 1
        budget_s, used = deadline - self._clock.time(), 0
        try:
            async for event in self._transport.stream(request, spec.id, budget_s, idle_timeout_s):
                if event.kind == "done" and event.usage is not None:
                    used = event.usage.total_tokens
                yield event
        except ProviderError as err:
            self._on_error(guard, admission, err)
            yield err
            return
        except BaseException:  # the consumer went away mid-stream: keep the charge, neutral outcome
            guard.failed(admission, BadRequestError("client went away", platform=self.platform, model=spec.id))
            raise
        guard.succeeded(admission, used, None)
        self._counters["ok"] += 1

    # -- operations --------------------------------------------------------------------------

    async def enable(self) -> bool:
        """Re-enable a key disabled after an authentication or out-of-credit error."""
        was = self.disabled is not None
        self.disabled = None
        return was

    async def status(self) -> dict[str, Any]:
        return {
            "platform": self.platform,
            "simulated": self.simulated,
            "key_configured": bool(self.endpoint.api_key),
            "disabled": None if self.disabled is None else {"kind": self.disabled.kind, "message": self.disabled.message},
            "settled_on_start": self.settled_on_start,
            "counters": dict(self._counters),
            "retry_budget": self.retry_budget.snapshot(self._clock.monotonic()),
            "models": {model_id: guard.status() for model_id, guard in self.guards.items()},
        }

