"""The ingress-side request flow: plan → route with fallback → record in the ledger.

Shared by every endpoint that answers with a model (route, chat completions, pipelines), so
each call path records the same way. Streams are recorded when they end: exact usage from the
final event, or — when the upstream fails mid-stream or the client goes away — the partial usage
seen so far (prompt estimate + output estimated from the text delivered).
"""
from __future__ import annotations

import asyncio

import time
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Protocol, Sequence

import structlog

from providers.catalog import Catalog
from providers.clock import SYSTEM_CLOCK, Clock
from providers.tokens import estimate_request_tokens
from providers.types import ChatRequest, ChatResponse, ProviderError, StreamEvent, Usage, assemble_tool_calls
from runtime.finops.budget import Admitted, Budget, BudgetExceeded
from runtime.finops.errors import BudgetRefusedError, LedgerUnavailableError
from runtime.core.budget_routing import BudgetStateCache, budget_plan
from runtime import request_log
from runtime.cache.entries import CachedAnswer
from runtime.config import Config
from runtime.finops.ledger_rows import PendingRow
from runtime.metrics import Metrics, NullMetrics
from runtime.core.router import (
    AllProvidersFailed, ClientRequestError, RoutedResponse, RoutedStream, Router,
)
from runtime.core.routing import RoutePlan
from runtime.core import unanswered

log = structlog.get_logger("switchboard.gateway")

CHARS_PER_TOKEN_ESTIMATE = 4


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling and why: carried into the ledger row."""

    user_id: str
    key_id: str | None = None
    agent_id: str = "orchestrator"
    conversation_id: str | None = None
    endpoint: str = "/api/ai/route"
    use_case: str | None = None
    budgets: tuple[Budget, ...] = ()  # the key's budgets, enforced by reservation

    @classmethod
    def of(cls, who: Any, **fields: Any) -> "CallContext":
        """The context of an authenticated principal (user, key, agent label, budgets)."""
        return cls(user_id=who.user_id, key_id=who.key_id, agent_id=who.agent or "orchestrator",
                   budgets=tuple(who.budgets), **fields)


class LedgerClient(Protocol):
    async def admit_and_open_pending(self, row: Any, budgets: Sequence[Budget]) -> Admitted | BudgetExceeded: ...

    async def finalize(self, row: Any) -> None: ...

    async def record(self, row: Any) -> None: ...


class RecordOnlyLedger:
    """Adapts a journal that can only `record` (a list in a test, an older client): rows are
    written after the call only. It cannot reserve, so a call that carries budgets is refused
    (503) rather than let through unchecked."""

    def __init__(self, journal: Any) -> None:
        self.journal = journal

    async def admit_and_open_pending(self, row: Any, budgets: Sequence[Budget]) -> Admitted | BudgetExceeded:
        if budgets:
            raise LedgerUnavailableError("this ledger cannot enforce budgets")
        return Admitted(row.request_id)

    async def finalize(self, row: Any) -> None:
        await self.journal.record(row)

    async def record(self, row: Any) -> None:
        await self.journal.record(row)


@dataclass(frozen=True, slots=True)
class Reservation:
    """The pending row's facts that its final row keeps."""

    created_at: float
    reserved_usd: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call produced, for its ledger row."""

    platform: str
    model: str
    usage: Usage
    cost_usd: float
    status: str
    fallback_used: bool
    attempts: int
    latency_ms: float
    error_kind: str | None = None
    saved_usd: float = 0.0


def reservation_usd(plan: RoutePlan, request: ChatRequest, default_max_tokens: int) -> tuple[float, int]:
    """The request's maximum cost over every step it may fall back to (prompt estimate, high
    side, + its max_tokens at catalog prices), with that step's prompt estimate."""
    output = request.max_tokens if request.max_tokens is not None else default_max_tokens
    best = (0.0, 0)
    for step in plan.steps:
        n_in = estimate_request_tokens(request, step.model)
        best = max(best, (step.model.cost_usd(n_in, output), n_in))
    return best


@dataclass
class Gateway:
    """Every provider call is on the books before it is made: a pending row holding the
    request's maximum cost is committed (admitted against the key's budgets) before the first
    attempt, and finalized with the real cost after. A ledger that cannot be reached means no
    call (503); a ledger lost after the call leaves the row pending, later settled `unknown` at
    its reservation (never under-charged). The global daily budget shapes plans first."""

    config: Config
    catalog: Catalog
    router: Router
    ledger: LedgerClient
    row_factory: Any  # runtime.ledger_store.FinalRow (a dict in unit tests)
    metrics: Metrics = field(default_factory=NullMetrics)
    cache: Any = None  # runtime.cache.ResponseCache, or None for no caching
    clock: Clock = SYSTEM_CLOCK
    pending_factory: Any = PendingRow
    budget_state: BudgetStateCache | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if not hasattr(self.ledger, "admit_and_open_pending"):
            self.ledger = RecordOnlyLedger(self.ledger)
        daily = self.config.budgets.daily_usd
        if daily is not None and hasattr(self.ledger, "budget_state"):
            ledger = self.ledger
            self.budget_state = BudgetStateCache(
                lambda: ledger.budget_state(daily), self.config.budgets.state_ttl_s, self.clock
            )

    async def apply_budget(self, plan: RoutePlan) -> RoutePlan:
        """The plan the global daily budget allows now (raises BudgetRefusedError)."""
        if self.budget_state is None:
            return plan
        return budget_plan(plan, await self.budget_state.state(), self.config)

    def deadline(self, deadline_ms: int | None = None) -> float:
        timeout_s = self.config.server.request_timeout_s
        if deadline_ms is not None:
            timeout_s = min(timeout_s, deadline_ms / 1000.0)
        return time.time() + timeout_s

    async def complete(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ctx: CallContext,
        deadline: float,
        cache_mode: str | None = None,
    ) -> RoutedResponse:
        started = time.perf_counter()
        plan = await self.apply_budget(plan)
        lookup, booked = await self._lookup_and_open(plan, request, ctx, cache_mode)
        if lookup is not None and lookup.hit:
            return await self._serve_hit(plan, request, ctx, lookup, started)
        assert booked is not None
        try:
            routed = await self.router.execute(plan, request, deadline)
        except (AllProvidersFailed, ClientRequestError) as exc:
            await self._finalize(self._row(plan, request, ctx, self._failed(request, exc), booked))
            raise
        r = routed.response
        outcome = Outcome(r.platform, r.model, r.usage, routed.cost_usd, "ok", routed.fallback_used,
                          routed.attempts, routed.latency_ms)
        served = [(r.platform, r.model, r.unanswered)] if r.unanswered else []
        outcome = self._charge_unanswered(outcome, request, unanswered.of_failures(routed.failures) + served)
        await self._finalize(self._row(plan, request, ctx, outcome, booked))
        if lookup is not None:
            await self._keep(lookup, r, routed.cost_usd)
            routed = replace(routed, cache="miss")
        return routed

    async def _lookup_and_open(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext,
                               mode: str | None) -> tuple[Any, Reservation | None]:
        """The cache lookup and the pending row (None after a hit that needed none). Without
        budgets they run side by side, so a miss costs the slower of the two, not their sum (a
        hit's pending row is then replaced by its `cached` row: same request_id). With budgets
        the row is opened on a miss only: an exhausted budget never hides a free hit."""
        if self.cache is None or mode == "off":
            return None, await self._open(plan, request, ctx)
        if ctx.budgets:
            lookup = await self._lookup(plan, request, ctx, mode)
            if lookup is not None and lookup.hit:
                return lookup, None
            return lookup, await self._open(plan, request, ctx)
        lookup, booked = await asyncio.gather(self._lookup(plan, request, ctx, mode), self._open(plan, request, ctx),
                                              return_exceptions=True)
        if isinstance(lookup, BaseException):
            if not isinstance(booked, BaseException):  # no call will follow: close its row at 0
                head = plan.steps[0]
                never = Outcome(head.platform, head.model.id, Usage(), 0.0, "error", False, 0, 0.0, "cache_error")
                await self._finalize(self._row(plan, request, ctx, never, booked))
            raise lookup
        if isinstance(booked, BaseException):
            raise booked
        return lookup, booked

    async def _open(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext) -> Reservation:
        """Commit the pending row (admitted against the key's budgets) or refuse the call."""
        booked = Reservation(self.clock.time(), 0.0)
        reserved, n_in = reservation_usd(plan, request, self.config.server.default_max_tokens)
        head = plan.steps[0]
        row = self.pending_factory(
            **self._identity(plan, request, ctx, booked), platform=head.platform, model=head.model.id,
            input_tokens=n_in, output_tokens=request.max_tokens or self.config.server.default_max_tokens,
            reserved_usd=reserved,
        )
        result = await self.ledger.admit_and_open_pending(row, ctx.budgets)
        if isinstance(result, BudgetExceeded):
            refused = Outcome(head.platform, head.model.id, Usage(), 0.0, "error", False, 0, 0.0, "budget_exceeded")
            await self._record_quietly(self._row(plan, request, ctx, refused, booked))
            raise BudgetRefusedError(
                result.name,
                f"budget {result.name} (${result.limit:.6f} per {result.period}) has "
                f"${result.limit - result.spent - result.reserved:.6f} left; this request may cost "
                f"up to ${result.requested:.6f}",
                limit_usd=result.limit, spent_usd=result.spent, reserved_usd=result.reserved,
                requested_usd=result.requested,
            )
        return Reservation(booked.created_at, reserved)

    async def _finalize(self, row: Any) -> None:
        """The final row. If the ledger is gone after the call, the row stays pending and is
        settled `unknown` at its reservation later: the answer is still delivered."""
        try:
            await self.ledger.finalize(row)
        except LedgerUnavailableError as exc:
            log.error("finops.finalize_failed", request_id=_field(row, "request_id"), error=str(exc))

    async def _record_quietly(self, row: Any) -> None:
        """A row for a call that cost nothing (cache hit, refusal): never worth failing for."""
        try:
            await self.ledger.record(row)
        except LedgerUnavailableError as exc:
            log.error("finops.record_failed", request_id=_field(row, "request_id"), error=str(exc))

    async def _lookup(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, mode: str | None):
        if self.cache is None or mode == "off":
            return None
        lookup = await self.cache.lookup(
            request, route=plan.chain, tenant=ctx.user_id, mode=mode, use_case=ctx.use_case or plan.use_case
        )
        if lookup.key is None:
            return None
        self.metrics.cache(lookup.hit, lookup.source or "exact", lookup.answer.cost_usd if lookup.hit else 0.0)
        return lookup

    async def _keep(self, lookup, response: ChatResponse, cost_usd: float) -> None:
        answer = CachedAnswer.from_response(response, cost_usd=cost_usd, created_at=time.time())
        await self.cache.store(lookup, answer)

    async def _serve_hit(self, plan, request, ctx, lookup, started: float) -> RoutedResponse:
        a = lookup.answer
        kind = "semantic" if lookup.source == "semantic" else "hit"
        latency_ms = (time.perf_counter() - started) * 1000.0
        outcome = Outcome(a.platform, a.model, a.usage, 0.0, "cached", False, 0, latency_ms, saved_usd=a.cost_usd)
        await self._record_quietly(self._row(plan, request, ctx, outcome, Reservation(self.clock.time(), 0.0)))
        response = a.response(latency_ms=latency_ms)
        return RoutedResponse(response, plan.chain, 0.0, latency_ms, 0, False, (), kind)

    async def stream(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ctx: CallContext,
        deadline: float,
        cache_mode: str | None = None,
    ) -> tuple[RoutedStream, AsyncIterator[StreamEvent]]:
        """Open a routed stream (fallback happens here, before any byte reaches the client) and
        return it with an event iterator that records the ledger row when the stream ends."""
        started = time.perf_counter()
        plan = await self.apply_budget(plan)
        lookup, booked = await self._lookup_and_open(plan, request, ctx, cache_mode)
        if lookup is not None and lookup.hit:
            hit = await self._serve_hit(plan, request, ctx, lookup, started)
            return replayed(hit, self.catalog), replayed_events(hit)
        assert booked is not None
        try:
            routed = await self.router.stream(plan, request, deadline)
        except (AllProvidersFailed, ClientRequestError) as exc:
            await self._finalize(self._row(plan, request, ctx, self._failed(request, exc), booked))
            raise
        if lookup is not None:
            routed.cache = "miss"
        return routed, self._accounted(plan, request, ctx, routed, started, booked, lookup)

    async def _accounted(
        self,
        plan: RoutePlan,
        request: ChatRequest,
        ctx: CallContext,
        routed: RoutedStream,
        started: float,
        booked: Reservation,
        lookup=None,
    ) -> AsyncIterator[StreamEvent]:
        seen: list[StreamEvent] = []
        usage, finish, error_kind = None, None, "client_disconnected"
        try:
            async for event in routed.events:
                if event.kind == "done":
                    usage, finish, error_kind = event.usage, event.finish_reason, None
                else:
                    seen.append(event)
                yield event
        except ProviderError as err:
            error_kind = err.kind
            raise
        finally:
            complete = usage is not None
            text = "".join(e.text for e in seen if e.kind == "delta")
            if usage is None:  # partial: charge what was (probably) consumed
                prompt_chars = sum(len(m.content) for m in request.messages)
                text_chars = sum(len(e.text) + len(e.arguments) + len(e.tool_name or "") for e in seen)
                usage = Usage(prompt_chars // CHARS_PER_TOKEN_ESTIMATE,
                              -(-text_chars // CHARS_PER_TOKEN_ESTIMATE))
            outcome = Outcome(
                routed.platform, routed.model.id, usage,
                routed.model.cost_usd(usage.input_tokens, usage.output_tokens),
                "ok" if error_kind is None else "error", routed.fallback_used, routed.attempts,
                (time.perf_counter() - started) * 1000.0, error_kind,
            )
            outcome = self._charge_unanswered(outcome, request, unanswered.of_failures(routed.failures))
            await self._finalize(self._row(plan, request, ctx, outcome, booked))
            if lookup is not None and complete:
                response = ChatResponse(text, usage, finish or "stop", routed.platform, routed.model.id,
                                        tool_calls=assemble_tool_calls(seen),
                                        reasoning="".join(e.text for e in seen if e.kind == "reasoning"))
                await self._keep(lookup, response, outcome.cost_usd)

    def _failed(self, request: ChatRequest, exc: AllProvidersFailed | ClientRequestError) -> Outcome:
        return self._charge_unanswered(failed_outcome(exc), request, unanswered.of_error(exc))

    def _charge_unanswered(self, outcome: Outcome, request: ChatRequest,
                           attempts: list[unanswered.Unanswered]) -> Outcome:
        """Attempts sent and never answered, charged at their worst case (runtime/core/unanswered.py)."""
        if not attempts:
            return outcome
        extra = unanswered.worst_case_usd(self.catalog, request, attempts, self.config.server.default_max_tokens)
        return replace(outcome, cost_usd=outcome.cost_usd + extra, status="unknown")

    def _identity(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, booked: Reservation) -> dict[str, Any]:
        return dict(
            request_id=request.request_id, user_id=ctx.user_id, key_id=ctx.key_id, agent_id=ctx.agent_id,
            conversation_id=ctx.conversation_id, endpoint=ctx.endpoint, use_case=ctx.use_case or plan.use_case,
            chain=plan.chain, created_at=booked.created_at,
        )

    def _row(self, plan: RoutePlan, request: ChatRequest, ctx: CallContext, o: Outcome, booked: Reservation):
        if o.error_kind is None:  # served (`unknown`: served, with an unanswered attempt besides)
            self.metrics.upstream(o.platform, o.model, o.usage.input_tokens, o.usage.output_tokens,
                                  o.cost_usd, o.fallback_used)
        else:
            self.metrics.error(o.error_kind or "error", o.platform)
        request_log.note_outcome(plan, ctx, o)
        return self.row_factory(
            **self._identity(plan, request, ctx, booked),
            platform=o.platform,
            model=o.model,
            input_tokens=o.usage.input_tokens,
            output_tokens=o.usage.output_tokens,
            reserved_usd=booked.reserved_usd,
            cost_usd=o.cost_usd,
            status=o.status,
            fallback_used=o.fallback_used,
            attempts=o.attempts,
            latency_ms=o.latency_ms,
            error_kind=o.error_kind,
            cache_hit=o.status == "cached",
            saved_usd=o.saved_usd,
        )


def _field(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name, None)


def replayed(hit: RoutedResponse, catalog: Catalog) -> RoutedStream:
    r = hit.response
    return RoutedStream(r.platform, catalog.get(r.platform, r.model), hit.chain, 0, False, (),
                        replayed_events(hit), hit.cache)


async def replayed_events(hit: RoutedResponse) -> AsyncIterator[StreamEvent]:
    """A cached answer replayed as a stream: its reasoning, its text, each tool call whole, then
    the final event."""
    r = hit.response
    if r.reasoning:
        yield StreamEvent("reasoning", r.reasoning)
    if r.text or not r.tool_calls:
        yield StreamEvent("delta", r.text)
    for i, c in enumerate(r.tool_calls):
        yield StreamEvent("tool_call", index=i, tool_id=c.id, tool_name=c.name, arguments=c.arguments,
                          signature=c.signature)
    yield StreamEvent("done", usage=r.usage, finish_reason=r.finish_reason)


def failed_outcome(exc: AllProvidersFailed | ClientRequestError) -> Outcome:
    if isinstance(exc, ClientRequestError):
        err = exc.error
        return Outcome(err.platform, err.model, Usage(), 0.0, "error", False, 1, 0.0, err.kind)
    last = exc.failures[-1] if exc.failures else None
    return Outcome(
        last.platform if last else "", last.model if last else "", Usage(), 0.0, "error",
        len(exc.failures) > 1, max(1, len(exc.failures)), 0.0, last.kind if last else "error",
    )
