"""Collaborative code review over the scripted pool and an in-memory blackboard."""
from __future__ import annotations

import pytest

from agents.code_review import run_code_review
from agents.prompts import PERFORMANCE_SYSTEM, SECURITY_SYSTEM, STRUCTURE_SYSTEM, SYNTHESIS_SYSTEM
from agents.steps import PipelineError, RunContext
from blackboard.store import MemoryStore
from tests.unit.agents_pipelines.helpers import Rows, ScriptedPool, failing, make_gateway, prompt_of

CODE = "def load(path):\n    return eval(open(path).read())\n"
AGENTS = ["code-review:structure", "code-review:security", "code-review:performance", "code-review:synthesis"]


class KeepingStore(MemoryStore):
    """A memory store that also keeps every entry written (the session is cleared at the end)."""

    def __init__(self) -> None:
        super().__init__()
        self.written = []

    async def write(self, session_id, fields):
        entry = await super().write(session_id, fields)
        self.written.append(entry)
        return entry


def run_ctx(run_id: str = "review_0123456789abcdef") -> RunContext:
    return RunContext("alice", "key_1", run_id, "/api/ai/review")


async def review(pool: ScriptedPool, rows: Rows | None = None, board: MemoryStore | None = None):
    board = board if board is not None else KeepingStore()
    report = await run_code_review(make_gateway(pool, rows), board, CODE, "python", run_ctx())
    return report, board


def answer_of(pool: ScriptedPool, system: str) -> str:
    """The text the pool answered to the last call with this system prompt (the one served)."""
    platform, request = pool.prompts(system)[-1]
    return pool.script(platform, request)


async def test_steps_run_in_sequence_each_reading_earlier_insights_by_role():
    pool, rows = ScriptedPool(), Rows()
    report, board = await review(pool, rows)

    # one call at a time, in dependency order: the wall time is the sum of the steps
    assert pool.max_in_flight == 1
    systems = [r.system_prompt for _, r in pool.requests]
    assert systems == [STRUCTURE_SYSTEM, SECURITY_SYSTEM, PERFORMANCE_SYSTEM, SYNTHESIS_SYSTEM]
    structure, security = answer_of(pool, STRUCTURE_SYSTEM), answer_of(pool, SECURITY_SYSTEM)
    performance = answer_of(pool, PERFORMANCE_SYSTEM)
    (_, security_call), = pool.prompts(SECURITY_SYSTEM)
    (_, performance_call), = pool.prompts(PERFORMANCE_SYSTEM)
    (_, synthesis_call), = pool.prompts(SYNTHESIS_SYSTEM)
    assert structure in prompt_of(security_call)
    assert structure in prompt_of(performance_call) and security in prompt_of(performance_call)
    assert all(t in prompt_of(synthesis_call) for t in (structure, security, performance))
    assert "Missing steps" not in prompt_of(synthesis_call)

    assert report.report == answer_of(pool, SYNTHESIS_SYSTEM)
    assert [s["agent_id"] for s in report.steps] == AGENTS
    assert [(s["platform"], s["model"]) for s in report.steps] == [
        ("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("gemini", "gemini-2.5-flash"),
        ("anthropic", "claude-sonnet-4-5"),
    ]
    assert report.missing_steps == []
    assert report.total_cost_usd == pytest.approx(sum(s["cost_usd"] for s in report.steps)) and report.total_cost_usd > 0
    assert report.steps_latency_ms == pytest.approx(sum(s["latency_ms"] for s in report.steps), abs=0.01)


async def test_every_call_has_a_ledger_row_with_its_step_agent_id_and_the_run_id():
    pool, rows = ScriptedPool(), Rows()
    report, _ = await review(pool, rows)
    assert [r["agent_id"] for r in rows.rows] == AGENTS
    assert {r["conversation_id"] for r in rows.rows} == {report.run_id}
    assert {r["endpoint"] for r in rows.rows} == {"/api/ai/review"}
    assert all(r["user_id"] == "alice" and r["key_id"] == "key_1" and r["status"] == "ok" for r in rows.rows)


async def test_insights_go_to_the_blackboard_with_who_served_them_and_the_session_is_cleared():
    pool = ScriptedPool(failing("openai"))  # structure falls back to anthropic
    report, board = await review(pool)
    assert [(e.agent_id, e.role, e.platform, e.model) for e in board.written] == [
        ("code-review:structure", "structure", "anthropic", "claude-sonnet-4-5"),
        ("code-review:security", "security", "anthropic", "claude-sonnet-4-5"),
        ("code-review:performance", "performance", "gemini", "gemini-2.5-flash"),
    ]
    assert all(0 < e.confidence <= 1 for e in board.written)
    assert report.blackboard_entries == 3
    assert await board.read_all(report.run_id) == [] and await board.sessions() == []


async def test_a_fallback_serving_the_structure_step_still_feeds_the_security_step():
    pool = ScriptedPool(failing("openai"))
    report, _ = await review(pool)
    structure = report.steps[0]
    assert (structure["platform"], structure["fallback_used"], structure["attempts"]) == ("anthropic", True, 2)
    (_, security_call), = pool.prompts(SECURITY_SYSTEM)
    assert answer_of(pool, STRUCTURE_SYSTEM) in prompt_of(security_call)
    assert "(missing: the structure step failed" not in prompt_of(security_call)


async def test_a_step_failing_entirely_is_reported_and_the_synthesis_names_it_missing():
    # code/cost = gemini flash → groq → openai mini: all down; the other chains still serve
    pool, rows = ScriptedPool(failing("gemini", "groq", "openai")), Rows()
    report, _ = await review(pool, rows)
    performance = report.steps[2]
    assert performance["step"] == "performance" and performance["ok"] is False
    assert "every platform" in performance["error"] and performance["cost_usd"] == 0
    assert report.missing_steps == ["performance"]
    (_, synthesis_call), = pool.prompts(SYNTHESIS_SYSTEM)
    assert "Missing steps: performance" in prompt_of(synthesis_call)
    assert report.report  # the synthesis still reports on what is there
    failed_row = next(r for r in rows.rows if r["agent_id"] == "code-review:performance")
    assert failed_row["status"] == "error"


async def test_a_failed_synthesis_is_a_503_with_the_steps_and_still_clears_the_session():
    # reasoning = anthropic → openai → openrouter: all down, so security and synthesis fail
    pool = ScriptedPool(failing("anthropic", "openai", "openrouter"))
    board = KeepingStore()
    with pytest.raises(PipelineError) as info:
        await review(pool, board=board)
    err = info.value
    assert err.status == 503 and err.type == "pipeline_failed"
    assert [s["ok"] for s in err.extra["steps"]] == [True, False, True, False]
    assert await board.sessions() == []
