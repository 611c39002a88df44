"""Prompt texts for every pipeline step, as data plus pure message builders.

Every builder returns `list[Message]` (system first). User-supplied text (code, queries, UI
state) is always fenced, never spliced into instructions, and prior steps' insights are passed
by step name, never looked up by the platform that happened to serve them.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.visual_delta import Delta, VisualChange
from providers.types import Message

# -- collaborative code review --------------------------------------------------------------------

REVIEW_STEPS = ("structure", "security", "performance")

STRUCTURE_SYSTEM = (
    "You are a senior software engineer reviewing code structure. Describe the design, the "
    "main components and their responsibilities, design patterns in use, and concrete "
    "maintainability problems (naming, duplication, coupling, error handling). Cite line or "
    "function names. Be concise: a bulleted list, most important first."
)
SECURITY_SYSTEM = (
    "You are an application security reviewer. Using the structure analysis as a map, find "
    "real vulnerabilities: injection, XSS, CSRF, SSRF, authn/authz flaws, secrets in code, "
    "unsafe deserialization, missing input validation. For each: location, impact, severity "
    "(critical/high/medium/low) and the fix. Say plainly when you find none."
)
PERFORMANCE_SYSTEM = (
    "You are a performance engineer. Using the structure and security analyses, find the "
    "hot paths and their costs: algorithmic complexity, needless I/O or allocations, N+1 "
    "queries, blocking calls in async code, missing caching. For each: location, expected "
    "impact and the fix. Do not propose optimizations that weaken the security findings."
)
SYNTHESIS_SYSTEM = (
    "You are the lead reviewer. Merge the step insights into one code review report with "
    "sections: Summary, Critical issues, Security, Performance, Structure, Recommended next "
    "steps. Deduplicate, resolve contradictions (say which insight you trust and why), keep "
    "severity labels, and never invent findings for a step whose insight is missing."
)


@dataclass(frozen=True, slots=True)
class ReviewInsight:
    """One review step's output, as read from the blackboard."""

    step: str
    text: str
    agent_id: str = ""
    platform: str = ""
    model: str = ""
    confidence: float | None = None


def structure_review_messages(code: str, language: str | None = None) -> list[Message]:
    return [
        Message("system", STRUCTURE_SYSTEM),
        Message("user", f"Analyze the structure of this code:\n\n{fence(code, language)}"),
    ]


def security_review_messages(
    code: str, structure: str | None, language: str | None = None
) -> list[Message]:
    body = (
        f"Structure analysis:\n{_insight_or_missing(structure, 'structure')}\n\n"
        f"Analyze the security of this code:\n\n{fence(code, language)}"
    )
    return [Message("system", SECURITY_SYSTEM), Message("user", body)]


def performance_review_messages(
    code: str, structure: str | None, security: str | None, language: str | None = None
) -> list[Message]:
    body = (
        f"Structure analysis:\n{_insight_or_missing(structure, 'structure')}\n\n"
        f"Security analysis:\n{_insight_or_missing(security, 'security')}\n\n"
        f"Analyze the performance of this code:\n\n{fence(code, language)}"
    )
    return [Message("system", PERFORMANCE_SYSTEM), Message("user", body)]


def synthesis_messages(
    insights: Sequence[ReviewInsight], failed_steps: Sequence[str] = ()
) -> list[Message]:
    """The final report. Steps that failed, or that left no insight, are named as missing."""
    present = {i.step for i in insights}
    missing = [s for s in dict.fromkeys([*failed_steps, *REVIEW_STEPS]) if s not in present]
    sections = [_format_insight(i) for i in insights] or ["(no insights were produced)"]
    body = "Synthesize these code review insights into one report:\n\n"
    body += "\n\n---\n\n".join(sections)
    if missing:
        names = ", ".join(missing)
        body += (
            f"\n\nMissing steps: {names}. These analyses failed and their insights are missing. "
            "State in the Summary that the report does not cover them, and do not guess their "
            "findings."
        )
    return [Message("system", SYNTHESIS_SYSTEM), Message("user", body)]


def _format_insight(insight: ReviewInsight) -> str:
    source = "/".join(p for p in (insight.platform, insight.model) if p)
    details = ", ".join(
        p
        for p in (
            f"by {insight.agent_id}" if insight.agent_id else "",
            f"via {source}" if source else "",
            f"confidence {insight.confidence:.2f}" if insight.confidence is not None else "",
        )
        if p
    )
    header = f"[{insight.step}]" + (f" ({details})" if details else "")
    return f"{header}\n{insight.text.strip()}"


def _insight_or_missing(text: str | None, step: str) -> str:
    if text and text.strip():
        return text.strip()
    return f"(missing: the {step} step failed; work from the code alone)"


# -- visual editor --------------------------------------------------------------------------------

VISUAL_SUMMARY_SYSTEM = (
    "You summarize UI edits made in a visual editor. Answer with exactly one clear sentence "
    "in plain English, no preamble, no quotes, no markdown. Example: Moved LoginButton 50px to "
    "the right and changed its background color from blue to green."
)
LEARN_PATTERN_SYSTEM = (
    "You study confirmed UI edits to learn the user's design preferences. From the edit, infer "
    "the reusable pattern: 1) the rule in one sentence, 2) where it applies (component kinds, "
    "pages), 3) where it must not be applied, 4) your confidence (low/medium/high). Do not "
    "generalize from a single edit further than the evidence allows."
)
IMPLEMENT_SYSTEM = (
    "You implement confirmed visual edits in the application's source code. Change only what "
    "the edit requires, keep the existing code style and design tokens, and keep the component "
    "accessible. Reply with the changed code in fenced blocks, each preceded by its file path, "
    "then one sentence on what you changed."
)
ENSEMBLE_FIX_SYSTEM = (
    "An implementation of a UI edit failed. Diagnose the root cause from the error and the "
    "code, then propose the smallest fix that makes the edit work. Reply with: Cause (one "
    "sentence), Fix (a fenced code block), Risk (one sentence). Another model will compare "
    "your proposal with others, so be precise and do not pad."
)


def visual_summary_messages(change: VisualChange, delta: Delta) -> list[Message]:
    body = (
        f"Component: {change.component_id}\nChange type: {change.type}\n"
        + (f"Page: {change.page}\n" if change.page else "")
        + f"Delta (from -> to):\n{fence(_json(delta), 'json')}\n\n"
        + "Summarize this UI change in one sentence."
    )
    return [Message("system", VISUAL_SUMMARY_SYSTEM), Message("user", body)]


def learn_pattern_messages(
    change: VisualChange, delta: Delta, summary: str, user_note: str | None = None
) -> list[Message]:
    body = (
        f"Confirmed edit: {summary}\nComponent: {change.component_id} ({change.type})\n"
        f"Delta:\n{fence(_json(delta), 'json')}"
        + (f"\n\nThe user added:\n{fence(user_note)}" if user_note else "")
        + "\n\nWhat pattern does this edit teach?"
    )
    return [Message("system", LEARN_PATTERN_SYSTEM), Message("user", body)]


def implement_messages(
    change: VisualChange,
    delta: Delta,
    summary: str,
    learning: str | None = None,
    source: str | None = None,
    framework: str = "react",
) -> list[Message]:
    parts = [
        f"Edit to implement ({framework}): {summary}",
        f"Component: {change.component_id}",
        f"Delta:\n{fence(_json(delta), 'json')}",
    ]
    if learning:
        parts.append(f"Learned pattern to respect:\n{learning.strip()}")
    if source:
        parts.append(f"Current source:\n{fence(source)}")
    return [Message("system", IMPLEMENT_SYSTEM), Message("user", "\n\n".join(parts))]


def ensemble_fix_messages(summary: str, implementation: str, error: str) -> list[Message]:
    body = (
        f"Intended edit: {summary}\n\nImplementation:\n{fence(implementation)}\n\n"
        f"Error:\n{fence(error)}\n\nPropose a fix."
    )
    return [Message("system", ENSEMBLE_FIX_SYSTEM), Message("user", body)]


# -- agent routing (Mr Blue) ----------------------------------------------------------------------

CLASSIFY_SYSTEM = (
    "You are a query classifier for an AI agent routing system. Reply with one JSON object "
    'and nothing else: {"intent": string (what the user wants to do, a few words), '
    '"entities": [strings] (specific things named: products, components, technologies, '
    'places), "type": one of "algorithm", "page", "feature", "bug", "question", "general", '
    '"keywords": [strings] (3-8 lowercase words or short phrases useful for matching a '
    "specialist agent)}."
)


def classification_messages(query: str, context: Mapping[str, Any] | None = None) -> list[Message]:
    """Classification in JSON mode (send with `response_format="json_object"`)."""
    body = f"Query:\n{fence(query)}"
    if context:
        body += f"\n\nContext:\n{fence(_json(dict(context)), 'json')}"
    return [Message("system", CLASSIFY_SYSTEM), Message("user", body + "\n\nClassify the query.")]


# -- code generation ------------------------------------------------------------------------------

CODEGEN_SYSTEM = (
    "You are an expert {language} programmer. Write correct, complete, production-quality "
    "code for the task: no placeholders or TODOs, handle errors explicitly, and keep it as "
    "simple as the task allows. {guide} Reply with the code in one fenced block followed by "
    "at most three sentences of explanation."
)
LANGUAGE_GUIDES: dict[str, str] = {
    "python": "Target Python 3.11+, follow PEP 8, use type hints and the standard library first.",
    "typescript": "Use strict TypeScript, no `any`, ES modules, and narrow types explicitly.",
    "javascript": "Use modern ES2022+ JavaScript with ES modules, const/let and async/await.",
    "go": "Write idiomatic Go: gofmt style, errors returned and wrapped, context for cancellation.",
    "rust": "Write safe, idiomatic Rust: Result-based errors, no unwrap on fallible paths.",
    "java": "Target Java 21: records where they fit, try-with-resources, no raw types.",
    "kotlin": "Write idiomatic Kotlin: null safety, data classes, coroutines for async work.",
    "csharp": "Target modern C# and .NET: nullable reference types, async/await, LINQ where clear.",
    "cpp": "Write modern C++20: RAII, smart pointers, no raw new/delete, const-correctness.",
    "c": "Write portable C11: check every allocation and return value, free what you allocate.",
    "swift": "Write idiomatic Swift: value types, optionals handled safely, async/await.",
    "ruby": "Write idiomatic Ruby: small methods, blocks and Enumerable, frozen string literals.",
    "php": "Target PHP 8.2+: strict_types, typed properties, PSR-12 style.",
    "sql": "Write standard SQL (PostgreSQL unless told otherwise), always parameterized.",
    "bash": "Write Bash with `set -euo pipefail`, quoted variables and clear error messages.",
}
LANGUAGE_ALIASES = {
    "py": "python", "ts": "typescript", "js": "javascript", "node": "javascript",
    "golang": "go", "rs": "rust", "c#": "csharp", "cs": "csharp", ".net": "csharp",
    "c++": "cpp", "cxx": "cpp", "kt": "kotlin", "rb": "ruby", "sh": "bash", "shell": "bash",
    "postgres": "sql", "postgresql": "sql",
}
_LANGUAGE_NAMES = {
    "csharp": "C#", "cpp": "C++", "typescript": "TypeScript", "javascript": "JavaScript",
    "php": "PHP", "sql": "SQL",
}


def normalize_language(language: str) -> str:
    key = language.strip().lower()
    return LANGUAGE_ALIASES.get(key, key)


def code_generation_messages(
    language: str, task: str, context: str | None = None
) -> list[Message]:
    """Code generation with the requested language's system prompt (a generic one if unknown)."""
    key = normalize_language(language)
    default_name = key.capitalize() if key in LANGUAGE_GUIDES else language.strip()
    name = _LANGUAGE_NAMES.get(key, default_name)
    guide = LANGUAGE_GUIDES.get(key, "Follow the language's established conventions.")
    system = CODEGEN_SYSTEM.format(language=name, guide=guide)
    body = f"Task:\n{fence(task)}"
    if context:
        body += f"\n\nExisting code and context:\n{fence(context, key)}"
    return [Message("system", system), Message("user", body)]


# -- helpers --------------------------------------------------------------------------------------


def fence(text: str, language: str | None = None) -> str:
    """Fence untrusted text so it cannot close its own block: the fence is longer than any
    backtick run inside."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{language or ''}\n{text}\n{ticks}"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
