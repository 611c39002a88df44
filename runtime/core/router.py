"""Fallback execution: try a plan's steps in order through the provider actors.

Runs in the ingress replica. One actor hop per attempt; the actor answers with a response or a
typed error (a value), and the router decides: move on, or stop (a client error no other
platform would answer differently).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import AsyncIterator, Protocol

from providers.types import (
    BadRequestError,
    ChatRequest,
    ChatResponse,
    ContextTooLongError,
    ProviderError,
    Refusal,
    StreamCutError,
    StreamEvent,
)
from providers.catalog import ModelSpec
from runtime.core.routing import RoutePlan


class ProviderPool(Protocol):
    async def complete(
        self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError: ...

    def stream(
        self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False
    ) -> AsyncIterator[StreamEvent | ProviderError]: ...


@dataclass(frozen=True, slots=True)
class Failure:
    platform: str
    model: str
    kind: str
    message: str
    status: int | None = None
    retry_after_s: float | None = None
    unanswered: int = 0  # attempts sent and never answered: maybe billed (ProviderError.unanswered)


@dataclass(frozen=True, slots=True)
class RoutedResponse:
    response: ChatResponse
    chain: str
    cost_usd: float
    latency_ms: float
    attempts: int
    fallback_used: bool
    failures: tuple[Failure, ...] = ()
    cache: str = "bypass"  # bypass | miss | hit | semantic


@dataclass
class RoutedStream:
    """A stream that has produced its first event (so fallback is over). Iterating `events`
    yields that event and the rest; a failure after it raises the ProviderError."""

    platform: str
    model: ModelSpec
    chain: str
    attempts: int
    fallback_used: bool
    failures: tuple[Failure, ...]
    events: AsyncIterator[StreamEvent]
    cache: str = "bypass"


class AllProvidersFailed(Exception):
    """Every step of the plan failed; `failures` says how, in order."""

    def __init__(self, chain: str, failures: list[Failure]) -> None:
        summary = "; ".join(f"{f.platform}/{f.model}: {f.kind}" for f in failures)
        super().__init__(f"every platform in {chain!r} failed ({summary})")
        self.chain = chain
        self.failures = tuple(failures)


class ClientRequestError(Exception):
    """The upstream refused the request itself (not the platform): no fallback would help."""

    def __init__(self, error: ProviderError) -> None:
        super().__init__(error.message)
        self.error = error


def _stops_the_chain(error: ProviderError) -> bool:
    return isinstance(error, BadRequestError) and not isinstance(error, ContextTooLongError)


def skipped_failures(plan: RoutePlan) -> list[Failure]:
    """The steps the plan left out before any call, as failures of kind `unsupported`."""
    return [Failure(platform, model, "unsupported", why) for platform, model, why in plan.skipped]


def _failure(platform: str, model: str, error: ProviderError) -> Failure:
    return Failure(platform, model, error.kind, error.message, error.status, error.retry_after_s,
                   error.unanswered)


def _routed(plan: RoutePlan, step, result: ChatResponse, failures: list[Failure], attempts: int, started: float) -> RoutedResponse:
    usage = result.usage
    return RoutedResponse(
        response=result,
        chain=plan.chain,
        cost_usd=step.model.cost_usd(usage.input_tokens, usage.output_tokens),
        latency_ms=(time.perf_counter() - started) * 1000.0,
        attempts=attempts + result.attempts,
        fallback_used=bool(failures),
        failures=tuple(failures),
    )


async def _continue(first: StreamEvent, rest: AsyncIterator[StreamEvent | ProviderError]):
    yield first
    async for item in rest:
        if isinstance(item, ProviderError):
            raise item
        yield item


@dataclass
class Router:
    pool: ProviderPool

    async def execute(
        self, plan: RoutePlan, request: ChatRequest, deadline: float
    ) -> RoutedResponse:
        """Each step in order; refusals are skipped at once. If nothing served and some step
        refused with a time inside the deadline, wait for the earliest one (in its actor,
        event-driven) and try it again."""
        started = time.perf_counter()
        failures: list[Failure] = []
        attempts, waitable = 0, []
        last = len(plan.steps) - 1
        for i, step in enumerate(plan.steps):
            result = await self.pool.complete(
                step.platform, request.for_model(step.model.id), deadline, retry=i == last
            )
            if isinstance(result, ChatResponse):
                return _routed(plan, step, result, failures, attempts, started)
            attempts += result.attempts if not isinstance(result, Refusal) else 0
            if _stops_the_chain(result):
                raise ClientRequestError(result)
            failures.append(_failure(step.platform, step.model.id, result))
            if isinstance(result, Refusal) and result.retry_after_s is not None:
                waitable.append((result.retry_after_s, step))
        if waitable:
            delay, step = min(waitable, key=lambda pair: pair[0])
            if time.time() + delay < deadline:
                result = await self.pool.complete(
                    step.platform, request.for_model(step.model.id), deadline, wait=True
                )
                if isinstance(result, ChatResponse):
                    return _routed(plan, step, result, failures, attempts, started)
                attempts += result.attempts if not isinstance(result, Refusal) else 0
                failures.append(_failure(step.platform, step.model.id, result))
        raise AllProvidersFailed(plan.chain, skipped_failures(plan) + failures)

    async def stream(self, plan: RoutePlan, request: ChatRequest, deadline: float) -> RoutedStream:
        """Open a stream on the first step that produces a first event; fall back until then."""
        failures: list[Failure] = []
        for step in plan.steps:
            events = self.pool.stream(step.platform, request.for_model(step.model.id), deadline)
            iterator = events.__aiter__()
            try:
                first = await iterator.__anext__()
            except StopAsyncIteration:
                first = StreamCutError("empty stream", platform=step.platform, model=step.model.id)
            if isinstance(first, StreamEvent):
                return RoutedStream(
                    platform=step.platform,
                    model=step.model,
                    chain=plan.chain,
                    attempts=len(failures) + 1,
                    fallback_used=bool(failures),
                    failures=tuple(failures),
                    events=_continue(first, iterator),
                )
            if _stops_the_chain(first):
                raise ClientRequestError(first)
            failures.append(_failure(step.platform, step.model.id, first))
        raise AllProvidersFailed(plan.chain, skipped_failures(plan) + failures)
