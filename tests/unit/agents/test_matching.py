from __future__ import annotations

import pytest

from agents.matching import (
    Classification,
    extract_keywords,
    match_agents,
    parse_classification,
    rank_agents,
    route_query,
    stem,
)
from agents.registry import default_registry, parse_registry


@pytest.fixture(scope="module")
def registry():
    return default_registry()


# -- keyword extraction -----------------------------------------------------------------------


def test_extract_keywords_lowercases_drops_stop_words_and_dedupes():
    assert extract_keywords("How do I FIX the Login and the login PAGE?") == ["fix", "login", "page"]


@pytest.mark.parametrize(
    ("word", "expected"),
    [("queries", "query"), ("classes", "class"), ("patches", "patch"), ("tests", "test"),
     ("caches", "cache"), ("status", "status"), ("kubernetes", "kubernetes"), ("aws", "aws"),
     ("analysis", "analysis"), ("boxes", "box")],
)
def test_plural_stemming(word, expected):
    assert stem(word) == expected


def test_programming_names_survive_tokenizing():
    assert extract_keywords("Port this C++ code to C# and node.js, or to C.") == [
        "port", "c++", "code", "c#", "node.js", "c",
    ]


def test_identifiers_are_split_into_words():
    assert extract_keywords("LoginButton backgroundColor font_size line-height") == [
        "login", "button", "background", "color", "font", "size", "line", "height",
    ]


def test_bigrams_are_optional_and_follow_the_unigrams():
    assert extract_keywords("sql injection attacks", with_bigrams=True) == [
        "sql", "injection", "attack", "sql injection", "injection attack",
    ]


# -- classification parsing ---------------------------------------------------------------------


def test_parse_plain_json():
    raw = '{"intent": "fix bug", "entities": ["LoginForm"], "type": "feature", "keywords": ["login", "bug"]}'
    assert parse_classification(raw) == Classification(
        intent="fix bug", entities=("LoginForm",), type="feature", keywords=("login", "bug")
    )


def test_parse_tolerates_code_fences_and_prose():
    fenced = 'Sure!\n```json\n{"intent": "deploy", "keywords": ["docker"]}\n```\nAnything else?'
    assert parse_classification(fenced).keywords == ("docker",)
    prose = 'Here you go: {"intent": "deploy", "keywords": "docker, helm"} -- done'
    assert parse_classification(prose).keywords == ("docker", "helm")


def test_parse_defaults_missing_fields_and_drops_junk_items():
    parsed = parse_classification('{"keywords": ["stripe", null, {"x": 1}, 3, " "]}')
    assert parsed == Classification(intent="unknown", type="general", keywords=("stripe", "3"))


@pytest.mark.parametrize(
    "raw", [None, "", "not json", "{broken", "[1, 2]", '"text"', "{}", '{"type": "general"}']
)
def test_parse_returns_none_for_bad_or_useless_json(raw):
    assert parse_classification(raw) is None


# -- matching --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "area", "primary"),
    [
        ("How do I fix a useEffect infinite loop in my React component?", "code", "react-dev"),
        ("Is this login form vulnerable to SQL injection or XSS?", "security", "appsec-reviewer"),
        ("Set up Stripe webhooks for failed subscription payments", "billing", "stripe-payments"),
        ("Find me a cheap flight from Berlin to Lisbon with one layover", "travel", "flight-search"),
        ("Our Kubernetes pods keep crashing after the Helm upgrade", "devops", "kubernetes-agent"),
        ("Slow SQL query with several joins: which index do I need?", "data", "sql-expert"),
        ("Add Playwright end-to-end tests for the checkout flow", "testing", "e2e-test-agent"),
        ("Translate our app strings into Spanish and Japanese", "i18n", "translation-agent"),
        ("Build a dashboard of weekly retention cohorts", "analytics", "product-analytics"),
        ("Write the README and a getting started guide", "docs", "readme-writer"),
        ("I was double charged, I want a refund", "billing", "refunds-disputes"),
        ("Make the hero section wider and align it left", "visual-editor", "layout-agent"),
    ],
)
def test_queries_route_to_their_area(registry, query, area, primary):
    match = match_agents(query, registry)
    assert registry.get(match.primary).area == area
    assert match.primary == primary
    assert match.escalate_to is None and match.confidence >= 0.5
    assert registry.get(primary).name in match.reasoning


def test_supporting_agents_are_other_good_matches(registry):
    match = match_agents("Stripe checkout webhook for subscription invoices", registry)
    assert match.primary == "stripe-payments"
    assert len(match.supporting) == 2 and match.primary not in match.supporting
    assert set(match.supporting) <= {"subscription-billing", "invoicing-agent", "webhook-integrations"}


@pytest.mark.parametrize("query", ["flurbish the wibble zonk", "", "the and of to"])
def test_gibberish_falls_back_and_escalates(registry, query):
    match = match_agents(query, registry)
    assert match.primary == "mr-blue"
    assert match.escalate_to == "human-support"
    assert match.supporting == () and match.confidence == 0.0
    assert match.reasoning.startswith("No agent matched") and match.reasoning.endswith(".")


def test_a_weak_match_is_overseen_by_the_fallback(registry):
    match = match_agents(["speak"], registry)  # one word of the multi-word "speak to someone"
    assert match.primary == "human-support"
    assert 0.3 <= match.confidence < 0.5
    assert match.escalate_to == "mr-blue"
    assert "weak match" in match.reasoning


def test_the_fallback_agent_is_never_a_match(registry):
    assert all(r.agent.id != "mr-blue" for r in rank_agents("help me with a general question", registry))


def test_classification_keywords_and_entities_drive_the_match(registry):
    classification = Classification(
        intent="deploy", entities=("terraform",), type="feature", keywords=("infrastructure as code",)
    )
    assert match_agents(classification, registry).primary == "terraform-agent"


def test_matching_is_deterministic(registry):
    query = "python fastapi endpoint returns 500"
    assert len({match_agents(query, registry) for _ in range(3)}) == 1
    ranked = rank_agents(query, registry)
    assert ranked == sorted(ranked, key=lambda r: (-r.confidence, r.agent.id))


def test_bad_classifier_output_falls_back_to_the_query_keywords(registry):
    query = "Our Docker image build fails in GitHub Actions"
    assert parse_classification("I think this is about CI") is None
    via_fallback = route_query(query, registry, classifier_output="I think this is about CI")
    assert via_fallback == match_agents(extract_keywords(query), registry)
    assert via_fallback.primary in {"ci-cd-agent", "docker-agent"}


def test_good_classifier_output_wins_over_the_query_text(registry):
    raw = '```json\n{"intent": "book", "entities": ["Lisbon"], "type": "general", "keywords": ["hotel", "room"]}\n```'
    assert route_query("blah", registry, classifier_output=raw).primary == "hotel-booking"


def test_a_small_custom_registry():
    registry = parse_registry(
        {
            "fallback": "general",
            "escalation": "human",
            "agents": [
                {"id": "general", "name": "G", "area": "general", "description": "d", "keywords": ["help"]},
                {"id": "human", "name": "H", "area": "support", "description": "d", "keywords": ["human"]},
                {"id": "pay", "name": "Payments", "area": "billing", "description": "d", "keywords": ["payment"]},
            ],
        }
    )
    assert match_agents("a failed payment", registry).primary == "pay"
    assert match_agents("a flight", registry).escalate_to == "human"
