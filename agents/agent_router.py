"""Agent routing ("Mr Blue"): classify the query on the cheap fast chain in JSON mode, then
match it against the agent registry.

The classifier answers `{intent, entities, type, keywords}`; when the call fails or its answer
is not usable JSON (cut off, prose, empty), the query's own keywords are matched instead, and
the answer says which (`classification_source: ai | keywords`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

from agents.matching import (
    Classification,
    extract_keywords,
    match_agents,
    parse_classification,
)
from agents.prompts import classification_messages
from agents.registry import Registry
from agents.steps import RunContext, StepCall, run_step
from providers.types import JsonSchemaFormat
from runtime.core.gateway import Gateway

ENDPOINT = "/api/ai/agents/route"
CLASSIFICATION_SCHEMA = JsonSchemaFormat("classification", {
    "type": "object",
    "properties": {
        "intent": {"type": "string"},
        "entities": {"type": "array", "items": {"type": "string"}},
        "type": {"type": "string", "description": "algorithm | page | feature | bug | question | general"},
        "keywords": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["intent", "entities", "type", "keywords"],
    "additionalProperties": False,
}, strict=True)
CLASSIFY = StepCall("classify", "agent-router:classify", "chat", "cost", 300, 0.0, "json_object", CLASSIFICATION_SCHEMA)
MAX_FALLBACK_KEYWORDS = 12


@dataclass(frozen=True, slots=True)
class RoutingAnswer:
    run_id: str
    primary: str
    supporting: list[str]
    escalate_to: str | None
    confidence: float
    reasoning: str
    classification_source: str  # ai | keywords
    classification: dict[str, Any]
    matched: list[str]
    classifier: dict[str, Any]


async def route_to_agents(
    gateway: Gateway,
    registry: Registry,
    query: str,
    context: Mapping[str, Any] | None,
    run: RunContext,
) -> RoutingAnswer:
    step = await run_step(gateway, CLASSIFY, classification_messages(query, context), run)
    parsed = parse_classification(step.text) if step.ok else None
    if parsed is not None:
        classification, source = parsed, "ai"
    else:
        keywords = tuple(extract_keywords(query)[:MAX_FALLBACK_KEYWORDS])
        classification, source = Classification(intent="unknown", keywords=keywords), "keywords"
    # the keyword fallback matches the raw query (phrases and bigrams included)
    match = match_agents(classification if source == "ai" else query, registry)
    classifier = step.summary()
    if step.ok and parsed is None:
        classifier["error"] = "the classifier's answer was not a usable JSON object"
    return RoutingAnswer(
        run_id=run.run_id,
        primary=match.primary,
        supporting=list(match.supporting),
        escalate_to=match.escalate_to,
        confidence=match.confidence,
        reasoning=match.reasoning,
        classification_source=source,
        classification=asdict(classification),
        matched=list(match.matched),
        classifier=classifier,
    )
