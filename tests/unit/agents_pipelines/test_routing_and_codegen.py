"""Agent routing (JSON classification, keyword fallback) and code generation over the
scripted pool."""
from __future__ import annotations

import json

import pytest

from agents.agent_router import route_to_agents
from agents.codegen import generate_code
from agents.registry import default_registry
from agents.steps import PipelineError, RunContext
from tests.unit.agents_pipelines.helpers import Rows, ScriptedPool, down, failing, make_gateway

QUERY = "My Stripe webhook returns 400 when a refund is issued"


def run_ctx(run_id: str = "route_0123456789abcdef") -> RunContext:
    return RunContext("alice", "key_1", run_id, "/api/ai/agents/route")


async def route(pool, rows=None, query=QUERY, context=None):
    return await route_to_agents(make_gateway(pool, rows), default_registry(), query, context, run_ctx())


async def test_classification_runs_in_json_mode_on_the_cheap_fast_chain():
    answer = json.dumps({"intent": "fix payment webhook", "entities": ["Stripe"], "type": "bug",
                         "keywords": ["stripe", "webhook", "refund"]})
    pool, rows = ScriptedPool(lambda platform, request: answer), Rows()
    result = await route(pool, rows, context={"page": "billing"})
    ((platform, request),) = pool.requests
    assert (platform, request.model) == ("gemini", "gemini-2.5-flash-lite")
    assert request.response_format == "json_schema" and request.temperature == 0.0
    assert request.json_schema.name == "classification" and request.json_schema.strict
    assert "billing" in request.messages[-1].content
    assert result.classification_source == "ai"
    assert result.classification["keywords"] == ("stripe", "webhook", "refund")
    assert result.primary != default_registry().fallback.id and len(result.supporting) <= 2
    assert 0 < result.confidence <= 1 and result.reasoning
    assert [r["agent_id"] for r in rows.rows] == ["agent-router:classify"]


async def test_classification_falls_back_to_json_mode_on_models_without_json_schema():
    answer = json.dumps({"intent": "refund", "entities": [], "type": "bug", "keywords": ["refund"]})

    pool = ScriptedPool(failing("gemini", otherwise=lambda platform, request: answer))
    result = await route(pool, Rows())
    formats = [(platform, request.response_format) for platform, request in pool.requests]
    assert formats[0] == ("gemini", "json_schema")
    assert formats[1][1] == "json_object" and formats[1][0] != "gemini"
    assert result.classification_source == "ai"


@pytest.mark.parametrize("bad", ["Sure! The user wants help with payments.", '{"intent": "fix', "{}"])
async def test_bad_json_from_the_classifier_falls_back_to_keywords(bad):
    result = await route(ScriptedPool(lambda platform, request: bad))
    assert result.classification_source == "keywords"
    assert "stripe" in result.classification["keywords"]
    assert result.classifier["ok"] is True and "not a usable JSON" in result.classifier["error"]
    assert result.primary != default_registry().fallback.id  # the keywords still match


async def test_a_failed_classifier_falls_back_to_keywords_with_the_same_match():
    failed = await route(ScriptedPool(lambda platform, request: down(platform)))
    bad_json = await route(ScriptedPool(lambda platform, request: "no json here"))
    assert failed.classification_source == "keywords" and failed.classifier["ok"] is False
    assert (failed.primary, failed.supporting) == (bad_json.primary, bad_json.supporting)


async def test_nothing_matching_escalates():
    result = await route(ScriptedPool(lambda platform, request: down(platform)), query="zzqx blorf")
    assert result.primary == default_registry().fallback.id
    assert result.escalate_to == default_registry().escalation.id and result.confidence == 0


async def test_code_generation_uses_code_quality_at_temperature_0_2_with_the_language_prompt():
    answer = "```python\ndef merge(a, b):\n    return sorted(a + b)\n```\nMerges both lists."
    pool, rows = ScriptedPool(lambda platform, request: answer), Rows()
    run = RunContext("alice", None, "gen_0123456789abcdef", "/api/ai/generate-code")
    out = await generate_code(make_gateway(pool, rows), "merge two sorted lists", "py",
                              "used by the scheduler", "def merge(a, b): ...", run)
    ((platform, request),) = pool.requests
    assert (platform, request.model, request.temperature) == ("openai", "gpt-4o", 0.2)
    assert "expert Python programmer" in request.system_prompt
    assert "used by the scheduler" in request.messages[-1].content
    assert "def merge(a, b): ..." in request.messages[-1].content
    assert out.code == "def merge(a, b):\n    return sorted(a + b)" and out.text == answer
    assert out.language == "python" and out.cost_usd > 0
    assert rows.rows[0]["agent_id"] == "codegen"


async def test_code_generation_falls_back_and_fails_with_a_503_when_nothing_serves():
    pool = ScriptedPool(lambda platform, request: down(platform) if platform == "openai" else "plain answer")
    run = RunContext("alice", None, "gen_0123456789abcdef", "/api/ai/generate-code")
    out = await generate_code(make_gateway(pool), "t", "go", None, None, run)
    assert (out.platform, out.fallback_used, out.code) == ("anthropic", True, "plain answer")
    with pytest.raises(PipelineError) as info:
        await generate_code(make_gateway(ScriptedPool(lambda p, r: down(p))), "t", "go", None, None, run)
    assert info.value.status == 503 and info.value.extra["step"]["ok"] is False
