"""Mr Blue agent routing, pure: keyword extraction (the classifier's fallback), parsing the
classifier's JSON answer, and matching a query against the agent registry.

Matching is a weighted term overlap with inverse document frequency (a BM25-lite without
length normalization): see `rank_agents`. Everything here is deterministic.
"""
from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agents.registry import Agent, Registry

# a token starts with a letter or digit and may carry + and # (c++, c#) and inner dots (node.js)
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+#]*(?:\.[a-z0-9+#]+)*")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SINGLE_LETTER_WORDS = frozenset({"c", "r"})  # languages

STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can cannot could did do does doing don down during
    each e.g etc few for from further get gets getting got had has have having he her here hers
    herself him himself his how i i.e if in into is isn it its itself just let like me might
    more most much must my myself need needs no nor not now of off on once only or other ought
    our ours ourselves out over own please same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up upon
    us very want wants was we were what when where which while who whom why will with would
    you your yours yourself yourselves can't won't i'm it's there's what's hi hello hey thanks
    thank trying try way something anything everything really make makes making use using used
    """.split()
)

# words whose trailing "s" is not a plural (kept as is), and irregular plurals
_NO_STEM = frozenset(
    {
        "analytics", "aws", "canvas", "devops", "docs", "express", "ios", "kubernetes", "macos",
        "news", "pandas", "postgres", "rails", "redis", "sass", "stats", "windows", "less",
        "atlas", "https", "series", "always", "status", "alias",
    }
)
_IRREGULAR = {"caches": "cache", "indices": "index", "analyses": "analysis", "children": "child"}


def stem(token: str) -> str:
    """Strip a plural ending: queries->query, classes->class, patches->patch, tests->test."""
    if token in _IRREGULAR:
        return _IRREGULAR[token]
    if len(token) <= 3 or token in _NO_STEM or not token.isalpha():
        return token
    if token.endswith("ies") and len(token) > 4:
        return token[:-3] + "y"
    if token.endswith(("sses", "shes", "ches", "xes")):
        return token[:-2]
    if token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def split_identifier(text: str) -> list[str]:
    """`LoginButton` / `font_size` / `line-height` -> its words, case kept."""
    return _CAMEL.sub(" ", text).replace("_", " ").replace("-", " ").split()


def tokens(text: str) -> list[str]:
    """Normalized content words of `text`, in order, with repeats.

    camelCase and snake/kebab-case identifiers are split into words first."""
    words = _TOKEN.findall(" ".join(split_identifier(text)).lower())
    return [
        stem(w)
        for w in words
        if w not in STOP_WORDS and (len(w) > 1 or w in _SINGLE_LETTER_WORDS)
    ]


def bigrams(words: list[str]) -> list[str]:
    return [f"{a} {b}" for a, b in zip(words, words[1:]) if a != b]


def extract_keywords(text: str, *, with_bigrams: bool = False) -> list[str]:
    """Keywords of `text` in first-seen order, without repeats (the classifier's fallback)."""
    words = tokens(text)
    found = list(dict.fromkeys(words))
    if with_bigrams:
        found += [b for b in dict.fromkeys(bigrams(words)) if b not in found]
    return found


# ------------------------------------------------------------------------------------------
# Classification (the AI classifier's JSON answer)
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Classification:
    intent: str = "unknown"
    entities: tuple[str, ...] = ()
    type: str = "general"
    keywords: tuple[str, ...] = ()


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*(.*?)```", re.DOTALL)


def parse_classification(raw_text: str | None) -> Classification | None:
    """The classifier's JSON answer, tolerant of code fences and prose around the object.

    None when there is no JSON object, or when it carries nothing usable (no intent, entities
    or keywords): the caller then falls back to `extract_keywords`."""
    data = _load_json_object(raw_text or "")
    if data is None:
        return None
    intent = data.get("intent")
    result = Classification(
        intent=intent.strip() if isinstance(intent, str) and intent.strip() else "unknown",
        entities=_string_list(data.get("entities")),
        type=str(data.get("type") or "general").strip() or "general",
        keywords=_string_list(data.get("keywords")),
    )
    if result.intent == "unknown" and not result.entities and not result.keywords:
        return None
    return result


def _load_json_object(text: str) -> dict | None:
    fenced = _FENCE.search(text)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(text)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def _string_list(value: object) -> tuple[str, ...]:
    """A list of strings from a JSON list (or a comma-separated string); other items dropped."""
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list):
        return ()
    items = (str(v).strip() for v in value if isinstance(v, str | int | float))
    return tuple(item for item in items if item)


# ------------------------------------------------------------------------------------------
# Matching
# ------------------------------------------------------------------------------------------

# weight of a term in an agent's profile, by where it comes from (the highest wins)
KEYWORD_WEIGHT = 1.0
KEYWORD_PART_WEIGHT = 0.5  # one word of a multi-word keyword
CAPABILITY_WEIGHT = 0.5
NAME_AREA_WEIGHT = 0.5
DESCRIPTION_WEIGHT = 0.15
# weight of a query term, by where it comes from
INTENT_WEIGHT = 0.5
# confidence = score / (score + SATURATION): one unique keyword hit ~ 0.55, two ~ 0.7
SATURATION = 0.8
MATCH_THRESHOLD = 0.3  # below: not a match at all
STRONG_THRESHOLD = 0.5  # below: a weak match, the fallback agent oversees
MAX_SUPPORTING = 2

Query = Classification | Sequence[str] | str


@dataclass(frozen=True, slots=True)
class Ranked:
    agent: Agent
    confidence: float
    matched: tuple[str, ...]  # query terms the agent matched, strongest first


@dataclass(frozen=True, slots=True)
class AgentMatch:
    primary: str
    supporting: tuple[str, ...]
    escalate_to: str | None
    confidence: float
    reasoning: str
    matched: tuple[str, ...] = ()


class AgentIndex:
    """Term profiles and inverse document frequencies of a registry's agents."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.profiles = {a.id: agent_profile(a) for a in registry if a.id != registry.fallback.id}
        df: dict[str, int] = {}
        for profile in self.profiles.values():
            for term in profile:
                df[term] = df.get(term, 0) + 1
        n = len(self.profiles)
        top = math.log(1 + n)  # a term only one agent has: normalized idf 1.0
        self.idf = {term: math.log(1 + n / count) / top for term, count in df.items()}


def agent_profile(agent: Agent) -> dict[str, float]:
    """term -> weight for one agent (keywords strongest, description weakest)."""
    profile: dict[str, float] = {}

    def add(terms: Iterable[str], weight: float) -> None:
        for term in terms:
            profile[term] = max(profile.get(term, 0.0), weight)

    add(tokens(agent.description), DESCRIPTION_WEIGHT)
    add(tokens(agent.name) + tokens(agent.area), NAME_AREA_WEIGHT)
    for capability in agent.capabilities:
        add(tokens(capability), CAPABILITY_WEIGHT)
    for keyword in agent.keywords:
        words = tokens(keyword)
        if len(words) == 1:
            add(words, KEYWORD_WEIGHT)
        else:
            add(words, KEYWORD_PART_WEIGHT)
            add(bigrams(words), KEYWORD_WEIGHT)
    return profile


def query_terms(query: Query) -> dict[str, float]:
    """term -> weight of a query: raw text, a keyword list, or a classification."""
    terms: dict[str, float] = {}

    def add(phrases: Iterable[str], weight: float) -> None:
        for phrase in phrases:
            for term in extract_keywords(phrase, with_bigrams=True):
                terms[term] = max(terms.get(term, 0.0), weight)

    if isinstance(query, Classification):
        add(query.keywords, 1.0)
        add(query.entities, 1.0)
        if query.intent != "unknown":
            add([query.intent], INTENT_WEIGHT)
    elif isinstance(query, str):
        add([query], 1.0)
    else:
        add(query, 1.0)
    return terms


_INDEXES: "weakref.WeakKeyDictionary[Registry, AgentIndex]" = weakref.WeakKeyDictionary()


def index_for(registry: Registry) -> AgentIndex:
    """The (cached) index of a registry."""
    index = _INDEXES.get(registry)
    if index is None:
        index = _INDEXES[registry] = AgentIndex(registry)
    return index


def rank_agents(query: Query, registry: Registry) -> list[Ranked]:
    """Agents scoring above `MATCH_THRESHOLD`, best first (ties by id): weighted term overlap.

    score(agent) = sum over shared terms t of query_weight(t) * agent_weight(t) * idf(t),
    idf(t) = ln(1 + N / df(t)) / ln(1 + N) (1.0 for a term only one agent has, so scores do
    not grow with the registry's size); confidence = score / (score + SATURATION)."""
    index = index_for(registry)
    terms = query_terms(query)
    ranked: list[Ranked] = []
    for agent_id, profile in index.profiles.items():
        contributions = {
            t: q * profile[t] * index.idf[t] for t, q in terms.items() if t in profile
        }
        score = sum(contributions.values())
        confidence = score / (score + SATURATION)
        if confidence >= MATCH_THRESHOLD:
            matched = tuple(sorted(contributions, key=lambda t: (-contributions[t], t)))
            ranked.append(Ranked(registry.get(agent_id), round(confidence, 4), matched))
    ranked.sort(key=lambda r: (-r.confidence, r.agent.id))
    return ranked


def match_agents(query: Query, registry: Registry) -> AgentMatch:
    """Primary agent, up to two supporting agents, and an escalation target when the match is
    weak (the general fallback agent) or absent (the human escalation target)."""
    ranked = rank_agents(query, registry)
    if not ranked:
        keywords = ", ".join([t for t in query_terms(query) if " " not in t][:5]) or "none"
        return AgentMatch(
            primary=registry.fallback.id,
            supporting=(),
            escalate_to=registry.escalation.id,
            confidence=0.0,
            reasoning=(
                f"No agent matched the query's keywords ({keywords}), so {registry.fallback.name}"
                f" takes it and it is escalated to {registry.escalation.name}."
            ),
        )
    best = ranked[0]
    supporting = tuple(r.agent.id for r in ranked[1 : 1 + MAX_SUPPORTING])
    strong = best.confidence >= STRONG_THRESHOLD
    on = ", ".join(f"'{t}'" for t in best.matched[:3])
    reasoning = (
        f"Query matches {best.agent.name} ({best.agent.area}) on {on} with "
        f"{round(best.confidence * 100)}% confidence"
        + ("." if strong else f", a weak match, so {registry.fallback.name} oversees it.")
    )
    return AgentMatch(
        primary=best.agent.id,
        supporting=supporting,
        escalate_to=None if strong else registry.fallback.id,
        confidence=best.confidence,
        reasoning=reasoning,
        matched=best.matched,
    )


def route_query(query: str, registry: Registry, classifier_output: str | None = None) -> AgentMatch:
    """Match using the classifier's answer when it parses, else the query's own keywords."""
    classification = parse_classification(classifier_output)
    return match_agents(classification if classification else query, registry)
