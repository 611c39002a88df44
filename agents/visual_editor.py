"""The visual-editor loop: capture → delta → affected agents → summary → (user confirms) →
learn → implement → (on failure) ensemble fix → share the learning.

`capture_change` stores the change as `pending_confirmation` and returns its summary: an AI
sentence from the cheap fast chain (chat/cost), or the template sentence when the AI fails in
any way. Nothing is learned or implemented until `confirm_change`, which first claims the
change (a compare-and-set on its status, so a second confirmation gets 409), then runs learn
(reasoning) → implement (code/quality); when the implementation fails an ensemble proposes
fixes. The learning goes to the user's blackboard session and everything to the store.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import structlog

from agents.code_review import Board
from agents.prompts import (
    ensemble_fix_messages,
    implement_messages,
    learn_pattern_messages,
    visual_summary_messages,
)
from agents.registry import Registry
from agents.steps import PipelineError, RunContext, StepCall, StepResult, clip, confidence_of, run_step
from agents.visual_delta import VisualChange, affected_agents, compute_delta, template_summary
from blackboard.models import NewEntry
from runtime.core.ensemble import EnsembleFailed, run_ensemble
from runtime.core.gateway import Gateway
from runtime.core.router import AllProvidersFailed, ClientRequestError
from runtime.finops.ledger_schema import TrackedChange

log = structlog.get_logger("switchboard.agents")

AGENT_PREFIX = "visual-editor"
SUMMARY = StepCall("summary", f"{AGENT_PREFIX}:summary", "chat", "cost", 120, 0.2)
LEARN = StepCall("learn", f"{AGENT_PREFIX}:learn", "reasoning", "quality", 800, 0.3)
IMPLEMENT = StepCall("implement", f"{AGENT_PREFIX}:implement", "code", "quality", 2500, 0.2)
ENSEMBLE_AGENT = f"{AGENT_PREFIX}:ensemble-fix"
ENSEMBLE_MAX_TOKENS = 1200
MAX_SUMMARY_CHARS = 300
LEARNING_SESSION_PREFIX = "visual-learnings:"
_UNSAFE_SESSION_CHARS = re.compile(r"[^A-Za-z0-9._:@-]")


class ChangeStore(Protocol):
    """The `tracked_changes` table: the Ledger actor, or a LedgerStore in tests."""

    async def store_change(self, change: TrackedChange) -> None: ...

    async def get_change(self, change_id: str) -> TrackedChange | None: ...

    async def update_change(self, change_id: str, status: str, result: dict[str, Any] | None = None,
                            expect_status: str | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class Captured:
    id: str
    status: str
    summary: str
    summary_source: str  # ai | template
    delta: dict[str, Any]
    affected_agents: list[str]
    summary_step: dict[str, Any]


def one_sentence(text: str | None) -> str | None:
    """The model's summary as one clean sentence (first non-empty line, no quotes or markdown
    emphasis, bounded), or None when nothing usable is left."""
    line = next((ln.strip() for ln in (text or "").splitlines() if ln.strip()), "")
    line = line.strip("\"'`*_ ").strip()
    if not line:
        return None
    if len(line) > MAX_SUMMARY_CHARS:
        line = line[: MAX_SUMMARY_CHARS - 1].rstrip() + "…"
    return line if line.endswith((".", "!", "?", "…")) else line + "."


async def _summarize(gateway: Gateway, change: VisualChange, delta, run: RunContext) -> tuple[str, str, StepResult | None]:
    """(summary, source, step): the AI sentence, or the template on ANY failure."""
    try:
        step = await run_step(gateway, SUMMARY, visual_summary_messages(change, delta), run)
    except Exception as exc:  # noqa: BLE001 - the template is a complete substitute
        log.warning("visual_editor.summary_failed", error_type=type(exc).__name__, run_id=run.run_id)
        return template_summary(change, delta), "template", None
    sentence = one_sentence(step.text) if step.ok else None
    if sentence is None:
        return template_summary(change, delta), "template", step
    return sentence, "ai", step


async def capture_change(
    gateway: Gateway, changes: ChangeStore, registry: Registry, change: VisualChange, run: RunContext
) -> Captured:
    """Delta, affected agents and summary; stored as `pending_confirmation` under `run.run_id`."""
    delta = compute_delta(change)
    affected = affected_agents(change, registry, delta)
    summary, source, step = await _summarize(gateway, change, delta, run)
    now = run.clock.time()
    await changes.store_change(TrackedChange(
        change_id=run.run_id, user_id=run.user_id, key_id=run.key_id, status="pending_confirmation",
        change=change.model_dump(mode="json"), delta=delta, summary=summary, summary_source=source,
        affected_agents=tuple(affected), created_at=now, updated_at=now,
    ))
    step_out = step.summary() if step else {"step": SUMMARY.step, "ok": False, "error": "internal error"}
    return Captured(run.run_id, "pending_confirmation", summary, source, delta, affected, step_out)


async def owned_change(changes: ChangeStore, change_id: str, user_id: str, is_admin: bool) -> TrackedChange:
    """The change, if it exists and the caller may see it (else 404: never reveal others')."""
    record = await changes.get_change(change_id)
    if record is None or not (is_admin or record.user_id == user_id):
        raise PipelineError(404, "not_found", f"no visual edit {change_id!r}", field="id")
    return record


def change_view(record: TrackedChange) -> dict[str, Any]:
    out = asdict(record)
    out["id"] = out.pop("change_id")
    out["affected_agents"] = list(record.affected_agents)
    out.pop("key_id")
    return out


def learning_session(user_id: str) -> str:
    """The blackboard session where a user's confirmed-edit learnings accumulate."""
    return LEARNING_SESSION_PREFIX + _UNSAFE_SESSION_CHARS.sub("_", user_id)[:100]


async def _propose_fixes(gateway: Gateway, summary: str, error: str, run: RunContext) -> dict[str, Any]:
    system, user = ensemble_fix_messages(summary, "(no implementation was produced)", error)
    ctx = run.call_context(ENSEMBLE_AGENT, "code")
    members = list(gateway.config.ensemble.default_members)
    try:
        result = await run_ensemble(gateway, user.content, members, system.content, ctx,
                                    gateway.deadline(run.deadline_ms), ENSEMBLE_MAX_TOKENS)
    except EnsembleFailed as exc:
        return {"ok": False, "answer": None, "cost_usd": 0.0,
                "members": [_member(m) for m in exc.members], "error": str(exc)}
    except (AllProvidersFailed, ClientRequestError) as exc:  # the synthesis call failed
        return {"ok": False, "answer": None, "cost_usd": 0.0, "members": [], "error": str(exc)}
    return {"ok": True, "answer": clip(result.answer), "cost_usd": result.total_cost_usd,
            "members": [_member(m) for m in result.members], "error": None}


def _member(m) -> dict[str, Any]:
    return {"platform": m.platform, "model": m.model, "ok": m.ok, "error": m.error,
            "cost_usd": m.cost_usd, "text": clip(m.text) if m.text else None}


async def confirm_change(
    gateway: Gateway,
    changes: ChangeStore,
    board: Board,
    change_id: str,
    run: RunContext,
    *,
    is_admin: bool = False,
    note: str | None = None,
    source: str | None = None,
    framework: str = "react",
) -> dict[str, Any]:
    """Learn → implement (→ ensemble fixes on failure) → share the learning → store. 409 when
    the change is not pending confirmation any more."""
    record = await owned_change(changes, change_id, run.user_id, is_admin)
    if not await changes.update_change(change_id, "confirming", expect_status="pending_confirmation"):
        current = await changes.get_change(change_id)
        status = current.status if current else record.status
        raise PipelineError(409, "already_confirmed", f"visual edit {change_id!r} is {status}, not pending confirmation",
                            field="id", extra={"change_status": status})
    try:
        result, status = await _learn_and_implement(gateway, board, record, run, note, source, framework)
    except BaseException:
        # never leave the change stuck in "confirming"
        await changes.update_change(change_id, "failed", {"error": "internal error while confirming"},
                                    expect_status="confirming")
        raise
    await changes.update_change(change_id, status, result, expect_status="confirming")
    return {"id": change_id, "status": status, "summary": record.summary, **result}


async def _learn_and_implement(
    gateway: Gateway, board: Board, record: TrackedChange, run: RunContext,
    note: str | None, source: str | None, framework: str,
) -> tuple[dict[str, Any], str]:
    change = VisualChange.model_validate(record.change)
    learn = await run_step(gateway, LEARN, learn_pattern_messages(change, record.delta, record.summary, note), run)
    learning = learn.text if learn.ok and (learn.text or "").strip() else None
    impl = await run_step(gateway, IMPLEMENT, implement_messages(
        change, record.delta, record.summary, learning, source, framework), run)
    implemented = impl.ok and bool((impl.text or "").strip())
    fixes = None
    if not implemented:
        fixes = await _propose_fixes(gateway, record.summary, impl.error or "the implementation was empty", run)
    entry_id = None
    if learning is not None:
        entry = await board.write(learning_session(record.user_id), NewEntry(
            agent_id=LEARN.agent_id, role="learning", platform=learn.platform, model=learn.model,
            insight=clip(learning), confidence=confidence_of(learn), related_to=(record.change_id,)))
        entry_id = entry.id
    result = {
        "learning": clip(learning) if learning else None,
        "learning_entry_id": entry_id,
        "implementation": clip(impl.text) if implemented and impl.text else None,
        "fixes": fixes,
        "steps": [learn.summary(), impl.summary()],
        "total_cost_usd": learn.cost_usd + impl.cost_usd + (fixes["cost_usd"] if fixes else 0.0),
    }
    return result, "implemented" if implemented else "failed"
