"""The one call loop for a platform: admit → call → retry → reconcile → breaker outcome.

It runs where the upstream call is made: in a Serve replica over leased guards
(providers/lease_holder.py), or in the ProviderActor over its own `ModelGuard`s. A guard is
anything with `admit / succeeded / failed / abandoned` (see `Guard`).

Expected outcomes are values, never exceptions: a `ChatResponse`, a `ProviderError` (upstream
failure after retries), or a `Refusal` (not sent: rate-limited until t, breaker open until t,
key disabled). The router skips refusals at once.
"""
from __future__ import annotations

import random
from dataclasses import replace
from typing import Any, Callable, Mapping, Protocol

import structlog
import structlog.contextvars

from providers.catalog import ModelSpec
from providers.clock import Clock
from providers.retry import RetryBudget, RetryPolicy
from providers.settings import PlatformSettings
from providers.tokens import reservation_tokens
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
from providers.wire.ratelimit import RateLimitInfo, parse_rate_limit_headers


class Guard(Protocol):
    async def admit(self, tokens: int, deadline_wall: float, wait: bool = False) -> Any: ...
    def succeeded(self, ticket: Any, used_tokens: int, info: RateLimitInfo | None) -> None: ...
    def failed(self, ticket: Any, error: ProviderError, used_tokens: int | None = None) -> None: ...
    def abandoned(self, ticket: Any) -> None: ...


def bind_request(request: ChatRequest, platform: str) -> None:
    """Every log line of this call carries the gateway's request id."""
    structlog.contextvars.bind_contextvars(request_id=request.request_id, platform=platform, model=request.model)


def disables_key(err: ProviderError) -> bool:
    return isinstance(err, (AuthenticationError, OutOfCreditError))


class PlatformCaller:
    def __init__(
        self,
        platform: str,
        models: Mapping[str, ModelSpec],
        guards: Callable[[ModelSpec], Guard],
        transport: Any,
        *,
        clock: Clock,
        retry: RetryPolicy,
        retry_budget: RetryBudget,
        default_max_tokens: int,
        on_disabled: Callable[[ProviderError], None] | None = None,
    ) -> None:
        self.platform = platform
        self.models = dict(models)
        self._guard_for = guards
        self.transport = transport
        self._clock = clock
        self.retry = retry
        self.retry_budget = retry_budget
        self._default_max_tokens = default_max_tokens
        self._on_disabled = on_disabled
        self.disabled: ProviderError | None = None
        self.counters = {"requests": 0, "upstream_attempts": 0, "ok": 0, "errors": 0, "refused": 0, "retries": 0}

    @classmethod
    def for_settings(cls, settings: PlatformSettings, guards: Callable[[ModelSpec], Guard], transport: Any, *,
                     clock: Clock, on_disabled: Callable[[ProviderError], None] | None = None) -> "PlatformCaller":
        """The caller a platform's settings describe (retry policy and budget, default max_tokens)."""
        r = settings.protection.retry
        return cls(
            settings.platform, {m.id: m for m in settings.models}, guards, transport, clock=clock,
            retry=RetryPolicy(r.max_attempts, r.base_s, r.cap_s, random.Random()),
            retry_budget=RetryBudget(r.budget_ratio, r.budget_min_retries, r.budget_window_s),
            default_max_tokens=settings.default_max_tokens, on_disabled=on_disabled,
        )

    # -- admission ---------------------------------------------------------------------------

    def _precheck(self, request: ChatRequest) -> ProviderError | None:
        if request.model not in self.models:
            return ModelNotFoundError(f"{request.model!r} is not a model of {self.platform}",
                                      platform=self.platform, model=request.model)
        if self.disabled is not None:
            self.counters["refused"] += 1
            return PlatformDisabledRefusal(
                f"{self.platform} key disabled after {self.disabled.kind}: {self.disabled.message}",
                platform=self.platform, model=request.model)
        return None

    def disable(self, err: ProviderError | None) -> None:
        """Mark the key disabled (None: enabled again)."""
        if err is not None and self.disabled is None:
            structlog.get_logger("switchboard.provider").error(
                "platform_key_disabled", platform=self.platform, kind=err.kind, message=err.message,
                action="fix the key or credit, then POST /api/ai/providers/{platform}/enable")
        self.disabled = err

    def _on_error(self, guard: Guard, ticket: Any, err: ProviderError, used: int | None = None) -> None:
        guard.failed(ticket, err, used)
        self.counters["errors"] += 1
        if disables_key(err) and self.disabled is None:
            self.disable(err)
            if self._on_disabled is not None:
                self._on_disabled(err)

    def _refused(self, refusal: Refusal) -> Refusal:
        self.counters["refused"] += 1
        return refusal

    # -- calls -------------------------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, deadline: float, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        """Admit, call, retry (full jitter, Retry-After as a minimum, within the deadline and
        the retry budget), reconcile. `deadline` is wall-clock seconds. `wait`: wait for
        capacity instead of refusing; `retry=False`: one attempt (the router has a fallback)."""
        bind_request(request, self.platform)
        early = self._precheck(request)
        if early is not None:
            return early
        spec = self.models[request.model]
        guard = self._guard_for(spec)
        tokens = reservation_tokens(request, spec, self._default_max_tokens)
        self.counters["requests"] += 1
        self.retry_budget.record_request(self._clock.monotonic())
        attempt, last_error, unanswered = 0, None, 0
        while True:
            attempt += 1
            ticket = await guard.admit(tokens, deadline, wait=wait)
            if isinstance(ticket, Refusal):
                return last_error or self._refused(ticket)
            if self.disabled is not None:  # learned while admission waited (a renewal's answer)
                guard.abandoned(ticket)
                return last_error or self._precheck(request)
            budget_s = deadline - self._clock.time()
            if budget_s <= 0:
                guard.abandoned(ticket)
                return last_error or UpstreamTimeoutError(
                    "deadline passed before the call", platform=self.platform, model=spec.id, attempts=0)
            self.counters["upstream_attempts"] += 1
            try:
                response, headers = await self.transport.complete(request, spec.id, budget_s)
            except ProviderError as err:
                self._on_error(guard, ticket, err)
                unanswered += err.unanswered
                err.attempts, err.unanswered = attempt, unanswered
                last_error = err
                delay = self.retry.next_delay(attempt, err, self._clock.time(), deadline) if retry else None
                if delay is None or not self.retry_budget.try_spend_retry(self._clock.monotonic()):
                    return err
                self.counters["retries"] += 1
                await self._clock.sleep(delay)
                continue
            except BaseException:  # cancelled mid-call: the charge stays, neutral outcome
                guard.failed(ticket, BadRequestError("call cancelled", platform=self.platform, model=spec.id))
                raise
            guard.succeeded(ticket, response.usage.total_tokens, parse_rate_limit_headers(headers, self._clock.time()))
            self.counters["ok"] += 1
            return replace(response, attempts=attempt, unanswered=unanswered)

    async def stream(self, request: ChatRequest, deadline: float, wait: bool = False, idle_timeout_s: float = 30.0):
        """Stream one attempt as `StreamEvent`s, ending with a `done` event, or with a
        `ProviderError`/`Refusal` value as the last item (never raises for upstream failures).
        No retries here: before the first event the router falls back instead."""
        bind_request(request, self.platform)
        early = self._precheck(request)
        if early is not None:
            yield early
            return
        spec = self.models[request.model]
        guard = self._guard_for(spec)
        self.counters["requests"] += 1
        ticket = await guard.admit(reservation_tokens(request, spec, self._default_max_tokens), deadline, wait=wait)
        if isinstance(ticket, Refusal):
            yield self._refused(ticket)
            return
        if self.disabled is not None:
            guard.abandoned(ticket)
            yield self._precheck(request)
            return
        self.counters["upstream_attempts"] += 1
        budget_s, used = deadline - self._clock.time(), 0
        try:
            async for event in self.transport.stream(request, spec.id, budget_s, idle_timeout_s):
                if event.kind == "done" and event.usage is not None:
                    used = event.usage.total_tokens
                yield event
        except ProviderError as err:
            self._on_error(guard, ticket, err)
            yield err
            return
        except BaseException:  # the consumer went away mid-stream: keep the charge, neutral outcome
            guard.failed(ticket, BadRequestError("client went away", platform=self.platform, model=spec.id))
            raise
        guard.succeeded(ticket, used, None)
        self.counters["ok"] += 1
