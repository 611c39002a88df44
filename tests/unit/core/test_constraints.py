"""Budget routing and context-window fallback (pure)."""
import pytest

from runtime.config import load_config
from runtime.core.routing import (
    BudgetTooLowError, ContextTooLongForAllError, constrain, estimated_cost, plan_for_use_case,
)

CFG = load_config()
CAT = CFG.catalog()


def plan(use_case="code", priority="quality", n_in=1000, n_out=100):
    return plan_for_use_case(CFG, CAT, use_case, priority, n_in, n_out)


def test_no_constraints_keeps_the_plan():
    p = plan()
    assert constrain(p, CFG, CAT, 1000, 100) == p


def test_budget_filters_within_the_chain():
    p = plan("code", "cost")  # gemini flash → groq 70b → gpt-4o-mini
    costs = {s.model.id: estimated_cost(s.model, 1000, 100) for s in p.steps}
    budget = sorted(costs.values())[1]  # admits the two cheapest only
    got = constrain(p, CFG, CAT, 1000, 100, budget)
    assert {s.model.id for s in got.steps} == {m for m, c in costs.items() if c <= budget}
    assert got.chain == "code_cost"


def test_tiny_budget_for_long_prompt_reaches_only_the_cheapest_models():
    got = constrain(plan("code", "quality"), CFG, CAT, 1000, 100, 0.0001)
    assert got.chain == "budget:code_quality"
    assert [(s.platform, s.model.id) for s in got.steps] == [("groq", "llama-3.1-8b-instant")]
    assert all(estimated_cost(s.model, 1000, 100) <= 0.0001 for s in got.steps)


@pytest.mark.parametrize("budget", [0.0, 1e-9])
def test_impossible_budget_is_refused_with_the_cheapest_estimate(budget):
    with pytest.raises(BudgetTooLowError) as info:
        constrain(plan(), CFG, CAT, 1000, 100, budget)
    assert info.value.cheapest_usd == pytest.approx(CAT.get("groq", "llama-3.1-8b-instant").cost_usd(1000, 100))


def test_context_window_skips_small_models():
    p = plan("chat", "speed")  # groq (131k) → gemini (1M) → openrouter llama-3-70b (8k)
    got = constrain(p, CFG, CAT, 20_000, 1000)
    assert [s.platform for s in got.steps] == ["groq", "gemini"]
    got = constrain(p, CFG, CAT, 500_000, 1000)
    assert [s.platform for s in got.steps] == ["gemini"]


def test_nothing_fits_the_context():
    with pytest.raises(ContextTooLongForAllError):
        constrain(plan("code", "quality"), CFG, CAT, 5_000_000, 100)
