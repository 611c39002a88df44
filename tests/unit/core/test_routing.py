"""Chain selection, model-field routing and cost arithmetic (pure, no Ray)."""
import pytest

from providers.catalog import Catalog, ModelSpec, UnknownModelError
from runtime.config import PRIORITIES, USE_CASES, load_config
from runtime.core.routing import (
    UnknownRouteError, expected_score, plan_for_model_field, plan_for_use_case, virtual_models,
)

CFG = load_config()
CAT = CFG.catalog()

SEED_SELECTION = {
    # SPEC §1: chat → cost? chat_cost : chat_speed; code → cost? code_cost : code_quality
    ("chat", "speed"): "chat_speed",
    ("chat", "cost"): "chat_cost",
    ("chat", "quality"): "chat_speed",
    ("code", "speed"): "code_quality",
    ("code", "cost"): "code_cost",
    ("code", "quality"): "code_quality",
    ("reasoning", "quality"): "reasoning",
    ("reasoning", "cost"): "reasoning",
    ("analysis", "speed"): "reasoning",
    ("bulk", "speed"): "bulk",
    ("bulk", "quality"): "bulk",
}


@pytest.mark.parametrize(("use_case", "priority"), list(SEED_SELECTION))
def test_seed_selection(use_case, priority):
    plan = plan_for_use_case(CFG, CAT, use_case, priority, 100, 200)
    assert plan.chain == SEED_SELECTION[(use_case, priority)]


def test_seed_chains_resolve_retired_models_to_successors():
    plan = plan_for_use_case(CFG, CAT, "reasoning", "quality", 10, 10)
    assert [(s.platform, s.model.id) for s in plan.steps] == [
        ("anthropic", "claude-sonnet-4-5"),
        ("openai", "gpt-4o"),
        ("openrouter", "anthropic/claude-sonnet-4.5"),
    ]
    first = plan_for_use_case(CFG, CAT, "chat", "speed", 10, 10).steps[0]
    assert (first.platform, first.model.id) == ("groq", "llama-3.3-70b-versatile")


def test_every_use_case_and_priority_has_a_plan_with_live_models():
    for use_case in USE_CASES:
        for priority in PRIORITIES:
            plan = plan_for_use_case(CFG, CAT, use_case, priority, 500, 500)
            assert plan.steps and all(s.model.status != "retired" for s in plan.steps)


def test_balanced_picks_lowest_expected_cost_times_latency():
    plan = plan_for_use_case(CFG, CAT, "chat", "balanced", 1000, 500)
    candidates = CFG.routing["chat"]["balanced"]
    scores = {
        name: expected_score(CAT.resolve(CFG.chains[name][0].model, CFG.chains[name][0].platform), 1000, 500)
        for name in candidates
    }
    assert plan.chain == min(scores, key=scores.get)
    assert scores[plan.chain] < max(scores.values())


def test_model_field_routes():
    assert plan_for_model_field(CFG, CAT, "switchboard/code-cost", 1, 1).chain == "code_cost"
    assert plan_for_model_field(CFG, CAT, "switchboard/bulk", 1, 1).chain == "bulk"
    direct = plan_for_model_field(CFG, CAT, "claude-3-5-sonnet", 1, 1)
    assert direct.chain == "model:anthropic/claude-sonnet-4-5" and len(direct.steps) == 1
    scoped = plan_for_model_field(CFG, CAT, "groq/llama-3.1-70b-versatile", 1, 1)
    assert scoped.steps[0].model.id == "llama-3.3-70b-versatile"
    for bad in ("switchboard/chat-fastest", "gpt-17", "switchboard/"):
        with pytest.raises(UnknownRouteError):
            plan_for_model_field(CFG, CAT, bad, 1, 1)


def test_virtual_models_cover_every_use_case_priority_and_chain():
    names = set(virtual_models(CFG))
    assert "switchboard/analysis-balanced" in names and "switchboard/code_quality" in names
    assert len(names) == len(USE_CASES) * len(PRIORITIES) + len(CFG.chains)


def test_cost_arithmetic_exact():
    gpt4o = CAT.resolve("gpt-4o")
    assert gpt4o.cost_usd(1_000_000, 0) == pytest.approx(2.50)
    assert gpt4o.cost_usd(1000, 500) == pytest.approx((1000 * 2.5 + 500 * 10) / 1e6)
    lite = CAT.resolve("gemini-2.5-flash-lite")
    assert lite.cost_usd(0, 2_000_000) == pytest.approx(0.80)
    assert CAT.resolve("gpt-4o-mini").cost_usd(0, 0) == 0


def test_catalog_rejects_duplicates_and_unknown_successors():
    a = ModelSpec("p", "a", 1, 1, 10)
    with pytest.raises(ValueError):
        Catalog([a, a])
    with pytest.raises(UnknownModelError):
        Catalog([ModelSpec("p", "old", 1, 1, 10, status="retired", successor="nope")])
    with pytest.raises(UnknownModelError):
        CAT.resolve("no-such-model")
