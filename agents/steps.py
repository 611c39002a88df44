"""One pipeline step = one model call through the Gateway, and the values pipelines share.

Every step goes through `Gateway.complete` with its own agent id, so it gets the chain's
fallback, the providers' limits, the response cache and a ledger row naming the agent; the
pipeline run id is the row's conversation id. A step never raises for an upstream failure: it
returns a `StepResult` with `ok=False` and the pipeline decides what that means.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Sequence

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import ChatRequest, JsonSchemaFormat, Message, ResponseFormat
from runtime.finops.budget import Budget
from runtime.core.gateway import CallContext, Gateway
from runtime.core.router import AllProvidersFailed, ClientRequestError
from runtime.core.routing import ContextTooLongForAllError, RoutePlan, constrain, plan_for_use_case
from runtime.core.routing import estimate_tokens

#: insights and answers kept on the blackboard / in stored results are clipped to this size
MAX_KEPT_CHARS = 16_000
_CODE_BLOCK = re.compile(r"(`{3,})[^\n`]*\n(.*?)\n?\1", re.DOTALL)


def new_run_id(prefix: str) -> str:
    """A pipeline run id (also the blackboard session and the ledger's conversation id)."""
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass(frozen=True, slots=True)
class RunContext:
    """Who runs a pipeline, under which run id, on which endpoint."""

    user_id: str
    key_id: str | None
    run_id: str
    endpoint: str
    clock: Clock = field(default=SYSTEM_CLOCK, compare=False)
    deadline_ms: int | None = None  # per step; None = the server's request timeout
    budgets: tuple[Budget, ...] = ()  # the caller's key budgets, enforced on every call

    def call_context(self, agent_id: str, use_case: str | None) -> CallContext:
        """The ledger context of one call of this run (the run id is the conversation id)."""
        return CallContext(user_id=self.user_id, key_id=self.key_id, agent_id=agent_id,
                           conversation_id=self.run_id, endpoint=self.endpoint, use_case=use_case,
                           budgets=self.budgets)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one step produced (text on success, the failure otherwise) and what it cost."""

    step: str
    agent_id: str
    ok: bool
    text: str | None
    platform: str
    model: str
    cost_usd: float
    latency_ms: float
    fallback_used: bool = False
    attempts: int = 0
    finish_reason: str | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """The step as reported to clients (no text)."""
        out = asdict(self)
        out.pop("text")
        out["latency_ms"] = round(self.latency_ms, 3)
        return out


@dataclass(frozen=True, slots=True)
class StepCall:
    """How to run one step: its name and agent id, chain selection and request shape."""

    step: str
    agent_id: str
    use_case: str
    priority: str
    max_tokens: int
    temperature: float | None = None
    response_format: ResponseFormat = "text"
    #: asked of the steps whose model supports json_schema; the others get `response_format`
    json_schema: JsonSchemaFormat | None = None


def structured_first(plan: RoutePlan, call: StepCall, request: ChatRequest) -> list[tuple[RoutePlan, ChatRequest]]:
    """The plan as attempts: the steps that support `call.json_schema` with it, then the rest
    (in chain order) with the plain response format."""
    if call.json_schema is None:
        return [(plan, request)]
    capable = [s for s in plan.steps if "json_schema" in s.model.capabilities]
    others = [s for s in plan.steps if s not in capable]
    structured = replace(request, response_format="json_schema", json_schema=call.json_schema)
    parts = [(replace(plan, steps=tuple(capable)), structured)] if capable else []
    return parts + ([(replace(plan, steps=tuple(others)), request)] if others else [])


async def complete_step(gateway: Gateway, plan: RoutePlan, call: StepCall, request: ChatRequest, ctx, deadline):
    *earlier, (last_plan, last_request) = structured_first(plan, call, request)
    for part, req in earlier:
        try:
            return await gateway.complete(part, req, ctx, deadline)
        except AllProvidersFailed:
            pass  # the rest of the chain, in the plain response format
    return await gateway.complete(last_plan, last_request, ctx, deadline)


async def run_step(
    gateway: Gateway, call: StepCall, messages: Sequence[Message], run: RunContext
) -> StepResult:
    """Run one step through the gateway; upstream failures become `ok=False` results."""
    cfg, catalog = gateway.config, gateway.catalog
    n_in = estimate_tokens(sum(len(m.content) for m in messages))
    request = ChatRequest(
        messages=tuple(messages),
        max_tokens=call.max_tokens,
        temperature=call.temperature,
        response_format=call.response_format,
    )
    ctx = run.call_context(call.agent_id, call.use_case)
    started = run.clock.monotonic()

    def failed(platform: str, model: str, error: str) -> StepResult:
        latency_ms = (run.clock.monotonic() - started) * 1000.0
        return StepResult(call.step, call.agent_id, False, None, platform, model, 0.0, latency_ms,
                          error=error)

    try:
        plan = plan_for_use_case(cfg, catalog, call.use_case, call.priority, n_in, call.max_tokens)
        plan = constrain(plan, cfg, catalog, n_in, call.max_tokens)
        routed = await complete_step(gateway, plan, call, request, ctx, gateway.deadline(run.deadline_ms))
    except ContextTooLongForAllError as exc:
        return failed("", "", f"context_too_long: {exc}")
    except AllProvidersFailed as exc:
        last = exc.failures[-1] if exc.failures else None
        return failed(last.platform if last else "", last.model if last else "", str(exc))
    except ClientRequestError as exc:
        return failed(exc.error.platform or "", exc.error.model or "", f"{exc.error.kind}: {exc}")
    r = routed.response
    return StepResult(
        call.step, call.agent_id, True, r.text, r.platform, r.model, routed.cost_usd,
        (run.clock.monotonic() - started) * 1000.0, routed.fallback_used, routed.attempts,
        r.finish_reason,
    )


def clip(text: str, limit: int = MAX_KEPT_CHARS) -> str:
    """`text` cut to at most `limit` characters (marked when cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def confidence_of(result: StepResult) -> float:
    """A step's self-reported confidence for the blackboard: a finished answer 0.8, one cut at
    max_tokens 0.5 (it may be missing its end)."""
    return 0.5 if result.finish_reason == "length" else 0.8


def code_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks in a model's answer, in order."""
    return [m.group(2) for m in _CODE_BLOCK.finditer(text)]


class PipelineError(Exception):
    """A pipeline cannot answer: carries the HTTP status and error body for the edge.

    Picklable (all state is in `args`), so it crosses the Coordinator actor boundary."""

    def __init__(self, status: int, type_: str, message: str, field: str | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(status, type_, message, field, extra or {})
        self.status, self.type, self.message = status, type_, message
        self.field, self.extra = field, extra or {}

    def __str__(self) -> str:
        return self.message
