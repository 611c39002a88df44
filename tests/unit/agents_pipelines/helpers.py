"""A scripted provider pool (the fake pool of tests/unit/test_router.py, with per-call answers
and a log of every prompt) and a gateway over it."""
from __future__ import annotations

import asyncio
from typing import Callable

from providers.types import ChatRequest, ChatResponse, ProviderError, ServerError, Usage
from runtime.config import load_config
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from tests.unit.core.test_router import FakePool

CFG = load_config()

Answer = str | ProviderError
Script = Callable[[str, ChatRequest], Answer]


def prompt_of(request: ChatRequest) -> str:
    return "\n".join(m.content for m in request.messages)


def default_answer(platform: str, request: ChatRequest) -> str:
    return f"answer from {platform}/{request.model} to request {request.request_id[-6:]}"


class ScriptedPool(FakePool):
    """`script(platform, request)` decides each answer: text, or a ProviderError value. Every
    call is logged with its request; `in_flight`/`max_in_flight` count concurrent calls."""

    def __init__(self, script: Script = default_answer) -> None:
        super().__init__({})
        self.script = script
        self.requests: list[tuple[str, ChatRequest]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(self, platform, request, deadline, **_options):
        self.calls.append((platform, request.model))
        self.requests.append((platform, request))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let any concurrent caller in (there must be none)
            answer = self.script(platform, request)
        finally:
            self.in_flight -= 1
        if isinstance(answer, ProviderError):
            return answer
        return ChatResponse(answer, Usage(100, 50), "stop", platform, request.model)

    def prompts(self, marker: str) -> list[tuple[str, ChatRequest]]:
        """The calls whose system prompt contains `marker`."""
        return [(p, r) for p, r in self.requests if marker in (r.system_prompt or "")]


class Rows:
    """A ledger journal: the rows the gateway records (dicts)."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    async def record(self, row) -> None:
        self.rows.append(row)


def make_gateway(pool: ScriptedPool, rows: Rows | None = None) -> Gateway:
    return Gateway(CFG, CFG.catalog(), Router(pool), rows if rows is not None else Rows(), row_factory=dict)


def down(platform: str) -> ServerError:
    return ServerError("upstream down", platform=platform, status=503)


def failing(*platforms: str, otherwise: Script = default_answer) -> Script:
    """A script where the given platforms always fail with 503."""

    def script(platform: str, request: ChatRequest) -> Answer:
        return down(platform) if platform in platforms else otherwise(platform, request)

    return script
