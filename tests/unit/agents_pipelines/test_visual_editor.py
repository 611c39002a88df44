"""The visual-editor loop over the scripted pool, a memory blackboard and a real ledger store
(the `tracked_changes` table)."""
from __future__ import annotations

import asyncio

import pytest

from agents.prompts import (
    ENSEMBLE_FIX_SYSTEM,
    IMPLEMENT_SYSTEM,
    LEARN_PATTERN_SYSTEM,
    VISUAL_SUMMARY_SYSTEM,
)
from agents.registry import default_registry
from agents.steps import PipelineError, RunContext
from agents.visual_delta import VisualChange
from agents.visual_editor import (
    capture_change,
    confirm_change,
    learning_session,
    one_sentence,
    owned_change,
)
from blackboard.store import MemoryStore
from providers.clock import FakeClock
from runtime.finops.ledger_store import LedgerStore
from tests.unit.agents_pipelines.helpers import Rows, ScriptedPool, default_answer, down, make_gateway, prompt_of

MOVE = VisualChange(type="move", component_id="LoginButton", page="login",
                    before={"x": 100, "y": 40}, after={"x": 150, "y": 40})
CHANGE_ID = "chg_00112233445566aa"


@pytest.fixture
async def changes(tmp_path):
    async with LedgerStore(str(tmp_path / "ledger.sqlite3"), clock=FakeClock()) as store:
        yield store


def run_ctx(user: str = "alice", run_id: str = CHANGE_ID) -> RunContext:
    return RunContext(user, "key_1", run_id, "/api/ai/visual-edits", FakeClock())


def script_by_system(answers: dict[str, object]):
    """Answer by the call's system prompt (text or a ProviderError factory), else the default."""

    def script(platform, request):
        answer = answers.get(request.system_prompt)
        if callable(answer):
            return answer(platform)
        return answer if answer is not None else default_answer(platform, request)

    return script


async def capture(pool, changes, rows=None, change=MOVE):
    return await capture_change(make_gateway(pool, rows), changes, default_registry(), change, run_ctx())


async def test_capture_summarizes_on_the_cheap_chain_and_stores_a_pending_change(changes):
    pool = ScriptedPool(script_by_system({VISUAL_SUMMARY_SYSTEM: '"Moved LoginButton 50px right."\nextra'}))
    rows = Rows()
    captured = await capture(pool, changes, rows)
    assert (captured.summary, captured.summary_source) == ("Moved LoginButton 50px right.", "ai")
    assert captured.delta == {"x": {"from": 100, "to": 150}}
    assert captured.affected_agents and captured.status == "pending_confirmation"
    assert pool.calls == [("gemini", "gemini-2.5-flash-lite")]  # chat/cost, first step
    assert [r["agent_id"] for r in rows.rows] == ["visual-editor:summary"]
    stored = await changes.get_change(CHANGE_ID)
    assert stored.status == "pending_confirmation" and stored.summary == captured.summary
    assert stored.change["component_id"] == "LoginButton" and stored.user_id == "alice"


@pytest.mark.parametrize("failure", ["all_down", "empty_answer", "raises"])
async def test_an_ai_summary_that_fails_in_any_way_gives_the_template_summary(changes, failure):
    if failure == "all_down":
        pool = ScriptedPool(lambda platform, request: down(platform))
    elif failure == "empty_answer":
        pool = ScriptedPool(lambda platform, request: "  \n ")
    else:
        def boom(platform, request):
            raise RuntimeError("unexpected")
        pool = ScriptedPool(boom)
    captured = await capture(pool, changes)
    assert captured.summary_source == "template"
    assert captured.summary == "Moved LoginButton 50px to the right on the login page."
    assert (await changes.get_change(CHANGE_ID)).summary_source == "template"


async def test_an_unconfirmed_change_is_never_learned_or_implemented(changes):
    pool = ScriptedPool()
    await capture(pool, changes)
    assert pool.prompts(LEARN_PATTERN_SYSTEM) == [] and pool.prompts(IMPLEMENT_SYSTEM) == []
    assert len(pool.requests) == 1  # the summary only
    assert (await changes.get_change(CHANGE_ID)).result is None


async def test_confirm_learns_then_implements_with_the_learning_and_shares_it(changes):
    pool, rows, board = ScriptedPool(), Rows(), MemoryStore()
    gateway = make_gateway(pool, rows)
    await capture_change(gateway, changes, default_registry(), MOVE, run_ctx())
    result = await confirm_change(gateway, changes, board, CHANGE_ID, run_ctx(), note="keep it aligned")

    learn_calls, impl_calls = pool.prompts(LEARN_PATTERN_SYSTEM), pool.prompts(IMPLEMENT_SYSTEM)
    assert [p for p, _ in learn_calls] == ["anthropic"] and [p for p, _ in impl_calls] == ["openai"]
    assert "keep it aligned" in prompt_of(learn_calls[0][1])
    assert result["learning"] in prompt_of(impl_calls[0][1])  # implement reads the learning
    assert result["status"] == "implemented" and result["fixes"] is None
    assert pool.prompts(ENSEMBLE_FIX_SYSTEM) == []

    (entry,) = await board.read_all(learning_session("alice"))
    assert (entry.agent_id, entry.role, entry.platform) == ("visual-editor:learn", "learning", "anthropic")
    assert entry.insight == result["learning"] and entry.related_to == (CHANGE_ID,)
    assert entry.id == result["learning_entry_id"]

    stored = await changes.get_change(CHANGE_ID)
    assert stored.status == "implemented" and stored.result["implementation"] == result["implementation"]
    assert [r["agent_id"] for r in rows.rows] == [
        "visual-editor:summary", "visual-editor:learn", "visual-editor:implement"]
    assert {r["conversation_id"] for r in rows.rows} == {CHANGE_ID}


async def test_a_failed_implementation_asks_the_ensemble_for_fixes(changes):
    # code/quality = openai → anthropic → gemini pro: all down for the implement prompt only
    implement_down = {IMPLEMENT_SYSTEM: lambda platform: down(platform)}
    pool, board = ScriptedPool(script_by_system(implement_down)), MemoryStore()
    gateway = make_gateway(pool)
    await capture_change(gateway, changes, default_registry(), MOVE, run_ctx())
    result = await confirm_change(gateway, changes, board, CHANGE_ID, run_ctx())

    assert result["status"] == "failed" and result["implementation"] is None
    fixes = result["fixes"]
    assert fixes["ok"] is True and fixes["answer"]
    members = pool.prompts(ENSEMBLE_FIX_SYSTEM)
    assert sorted(p for p, _ in members) == sorted(gateway.config.ensemble.default_members)
    assert "every platform" in prompt_of(members[0][1])  # the error is in the fix prompt
    assert (await changes.get_change(CHANGE_ID)).status == "failed"
    assert len(await board.read_all(learning_session("alice"))) == 1  # the learning is still shared


async def test_confirming_twice_is_a_409_and_nothing_runs_again(changes):
    pool = ScriptedPool()
    gateway = make_gateway(pool)
    await capture_change(gateway, changes, default_registry(), MOVE, run_ctx())
    await confirm_change(gateway, changes, MemoryStore(), CHANGE_ID, run_ctx())
    calls = len(pool.requests)
    with pytest.raises(PipelineError) as info:
        await confirm_change(gateway, changes, MemoryStore(), CHANGE_ID, run_ctx())
    assert info.value.status == 409 and info.value.extra["change_status"] == "implemented"
    assert len(pool.requests) == calls


async def test_concurrent_confirmations_claim_the_change_once(changes):
    pool = ScriptedPool()
    gateway = make_gateway(pool)
    await capture_change(gateway, changes, default_registry(), MOVE, run_ctx())
    outcomes = await asyncio.gather(
        *(confirm_change(gateway, changes, MemoryStore(), CHANGE_ID, run_ctx()) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(o, dict) for o in outcomes) == 1
    assert sorted(o.status for o in outcomes if isinstance(o, PipelineError)) == [409, 409]
    assert len(pool.prompts(IMPLEMENT_SYSTEM)) == 1


async def test_other_users_cannot_see_or_confirm_a_change(changes):
    await capture(ScriptedPool(), changes)
    for user in ("mallory",):
        with pytest.raises(PipelineError) as info:
            await owned_change(changes, CHANGE_ID, user, is_admin=False)
        assert info.value.status == 404
        with pytest.raises(PipelineError):
            await confirm_change(make_gateway(ScriptedPool()), changes, MemoryStore(), CHANGE_ID, run_ctx(user))
    assert (await owned_change(changes, CHANGE_ID, "root", is_admin=True)).user_id == "alice"
    assert (await changes.get_change(CHANGE_ID)).status == "pending_confirmation"


def test_one_sentence_cleans_the_model_answer():
    assert one_sentence('  **"Moved the logo up"**  \nSecond line') == "Moved the logo up."
    assert one_sentence("   ") is None and one_sentence(None) is None
    assert len(one_sentence("x" * 1000)) <= 300
