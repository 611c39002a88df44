"""Collaborative code review: structure → security → performance → synthesis, on a blackboard.

Each analysis step runs on its own chain (structure: code/quality, security: reasoning,
performance: code/cost), writes its insight to the run's blackboard session, and the next step
reads earlier insights BY ROLE — never by the platform that happened to serve them (the seed's
review broke when a fallback served the structure step). The steps depend on each other, so
they run one after another: the pipeline's wall time is the sum of its steps. A failed step is
reported and the synthesis prompt names it as missing. The session is cleared at the end, also
when a step raises.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agents.prompts import (
    ReviewInsight,
    performance_review_messages,
    security_review_messages,
    structure_review_messages,
    synthesis_messages,
)
from agents.steps import (
    PipelineError,
    RunContext,
    StepCall,
    StepResult,
    clip,
    confidence_of,
    run_step,
)
from blackboard.models import Entry, NewEntry
from runtime.core.gateway import Gateway

ENDPOINT = "/api/ai/review"
AGENT_PREFIX = "code-review"
ANALYSIS_MAX_TOKENS = 1500
SYNTHESIS_MAX_TOKENS = 2500
TEMPERATURE = 0.2

STRUCTURE = StepCall("structure", f"{AGENT_PREFIX}:structure", "code", "quality", ANALYSIS_MAX_TOKENS, TEMPERATURE)
SECURITY = StepCall("security", f"{AGENT_PREFIX}:security", "reasoning", "quality", ANALYSIS_MAX_TOKENS, TEMPERATURE)
PERFORMANCE = StepCall("performance", f"{AGENT_PREFIX}:performance", "code", "cost", ANALYSIS_MAX_TOKENS, TEMPERATURE)
SYNTHESIS = StepCall("synthesis", f"{AGENT_PREFIX}:synthesis", "reasoning", "quality", SYNTHESIS_MAX_TOKENS, TEMPERATURE)
ANALYSIS_STEPS = (STRUCTURE, SECURITY, PERFORMANCE)


class Board(Protocol):
    """What the pipelines need of a blackboard: a store, or the Blackboard actor's client."""

    async def write(self, session_id: str, fields: Any) -> Entry: ...

    async def read(self, session_id: str, *, agent: str | None = None, role: str | None = None,
                   platform: str | None = None) -> list[Entry]: ...

    async def read_all(self, session_id: str) -> list[Entry]: ...

    async def clear(self, session_id: str) -> int: ...


@dataclass(frozen=True, slots=True)
class ReviewReport:
    run_id: str
    report: str
    steps: list[dict[str, Any]]
    missing_steps: list[str]
    total_cost_usd: float
    steps_latency_ms: float  # the sum of the steps: they are sequential
    blackboard_entries: int = 0


async def _latest(board: Board, session: str, role: str) -> str | None:
    """The latest insight written under `role` in the session (None when there is none)."""
    entries = await board.read(session, role=role)
    return entries[-1].insight if entries else None


async def _analysis_messages(board: Board, session: str, call: StepCall, code: str, language: str | None):
    if call is STRUCTURE:
        return structure_review_messages(code, language)
    structure = await _latest(board, session, STRUCTURE.step)
    if call is SECURITY:
        return security_review_messages(code, structure, language)
    security = await _latest(board, session, SECURITY.step)
    return performance_review_messages(code, structure, security, language)


async def _share(board: Board, session: str, result: StepResult) -> Entry:
    return await board.write(session, NewEntry(
        agent_id=result.agent_id, role=result.step, platform=result.platform, model=result.model,
        insight=clip(result.text or ""), confidence=confidence_of(result),
    ))


def _insights(entries: list[Entry]) -> list[ReviewInsight]:
    return [
        ReviewInsight(step=e.role, text=e.insight, agent_id=e.agent_id, platform=e.platform,
                      model=e.model, confidence=e.confidence)
        for e in entries
    ]


async def run_code_review(
    gateway: Gateway, board: Board, code: str, language: str | None, run: RunContext
) -> ReviewReport:
    """Run the review in `run.run_id`'s blackboard session; raise `PipelineError` (503) when
    the synthesis fails (there is no report to give)."""
    session = run.run_id
    results: list[StepResult] = []
    try:
        for call in ANALYSIS_STEPS:
            messages = await _analysis_messages(board, session, call, code, language)
            result = await run_step(gateway, call, messages, run)
            results.append(result)
            if result.ok and (result.text or "").strip():
                await _share(board, session, result)
        entries = await board.read_all(session)
        failed = [r.step for r in results if not r.ok]
        synthesis = await run_step(gateway, SYNTHESIS, synthesis_messages(_insights(entries), failed), run)
        results.append(synthesis)
    finally:
        await board.clear(session)
    steps = [r.summary() for r in results]
    total = sum(r.cost_usd for r in results)
    if not synthesis.ok:
        raise PipelineError(503, "pipeline_failed", f"the synthesis step failed: {synthesis.error}",
                            extra={"run_id": run.run_id, "steps": steps, "total_cost_usd": total})
    return ReviewReport(
        run_id=run.run_id,
        report=synthesis.text or "",
        steps=steps,
        missing_steps=failed,
        total_cost_usd=total,
        steps_latency_ms=round(sum(r.latency_ms for r in results), 3),
        blackboard_entries=len(entries),
    )
