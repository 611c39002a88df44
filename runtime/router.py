"""Fallback execution: try a plan's steps in order through the provider actors.

Runs in the ingress replica. One actor hop per attempt; the actor answers with a response or a
typed error (a value), and the router decides: move on, or stop (a client error no other
platform would answer differently).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

from providers.types import (
    BadRequestError,
    ChatRequest,
    ChatResponse,
    ContextTooLongError,
    ProviderError,
)
from runtime.routing import RoutePlan


class ProviderPool(Protocol):
    async def complete(
        self, platform: str, request: ChatRequest, deadline: float
    ) -> ChatResponse | ProviderError: ...


@dataclass(frozen=True, slots=True)
class Failure:
    platform: str
    model: str
    kind: str
    message: str
    status: int | None = None
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class RoutedResponse:
    response: ChatResponse
    chain: str
    cost_usd: float
    latency_ms: float
    attempts: int
    fallback_used: bool
    failures: tuple[Failure, ...] = ()


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


@dataclass
class Router:
    pool: ProviderPool

    async def execute(
        self, plan: RoutePlan, request: ChatRequest, deadline: float
    ) -> RoutedResponse:
        started = time.perf_counter()
        failures: list[Failure] = []
        for step in plan.steps:
            result = await self.pool.complete(step.platform, request.for_model(step.model.id), deadline)
            if isinstance(result, ChatResponse):
                usage = result.usage
                return RoutedResponse(
                    response=result,
                    chain=plan.chain,
                    cost_usd=step.model.cost_usd(usage.input_tokens, usage.output_tokens),
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    attempts=len(failures) + 1,
                    fallback_used=bool(failures),
                    failures=tuple(failures),
                )
            if _stops_the_chain(result):
                raise ClientRequestError(result)
            failures.append(
                Failure(
                    step.platform,
                    step.model.id,
                    result.kind,
                    result.message,
                    result.status,
                    result.retry_after_s,
                )
            )
        raise AllProvidersFailed(plan.chain, failures)
