"""The exact cache's key and its caching policy.

The key is a SHA-256 over a canonical JSON of everything that shapes an answer: every message
with its role, in order (system prompt included), the resolved route (chain or model),
temperature, max_tokens, top_p, stop, response_format and the tenant (the API key's owner; None
when the operator shares the cache). Nothing is lowercased or trimmed: "Hello" and "hello " are
different prompts. The `v1:` prefix changes whenever the canonical form does.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from providers.types import ChatRequest, ImagePart, Message, TextPart

KEY_VERSION = "v1"
CacheMode = Literal["exact", "semantic", "off"]
DEFAULT_TTL_S = 24 * 3600.0
#: requests without an explicit `cache` mode are cached only at or below this temperature
DEFAULT_MAX_TEMPERATURE = 0.3
#: what an absent temperature means (the providers' default)
PROVIDER_DEFAULT_TEMPERATURE = 1.0

# ------------------------------------------------------------------------------------------
# Key
# ------------------------------------------------------------------------------------------


def _number(value: float | None) -> float | None:
    # 0 and 0.0 (and -0.0) must hash alike: JSON would print them differently.
    return None if value is None else float(value) + 0.0


def image_key(part: ImagePart) -> list[Any]:
    """An image by its URL, or by the SHA-256 of its inline data."""
    if part.is_inline:
        return ["data", part.media_type, hashlib.sha256((part.data or "").encode()).hexdigest(), part.detail]
    return ["url", part.url, part.detail]


def message_fields(m: Message) -> list[Any]:
    """A message as the key sees it: [role, text], plus what else the turn carries (its parts
    with image digests, tool calls, the call a tool turn answers) when it carries any."""
    extra: dict[str, Any] = {}
    if m.parts:
        extra["parts"] = [["text", p.text] if isinstance(p, TextPart) else image_key(p) for p in m.parts]
    if m.tool_calls:
        extra["tool_calls"] = [[c.id, c.name, c.arguments] for c in m.tool_calls]
    if m.tool_call_id is not None:
        extra["tool_call_id"] = m.tool_call_id
    return [m.role, m.content, extra] if extra else [m.role, m.content]


def canonical_fields(request: ChatRequest, *, route: str, tenant: str | None) -> dict[str, Any]:
    """Everything but the messages that the cache key covers (shared with the semantic layer).
    Tool and reasoning options are included only when set, so text-only keys do not change."""
    fields: dict[str, Any] = {
        "route": route,
        "temperature": _number(request.temperature),
        "max_tokens": request.max_tokens,
        "top_p": _number(request.top_p),
        "stop": list(request.stop),
        "response_format": request.response_format,
        "tenant": tenant,
    }
    if request.tools:
        fields["tools"] = [[t.name, t.description, t.parameters, t.strict] for t in request.tools]
    optional = {
        "tool_choice": [request.tool_choice.mode, request.tool_choice.name] if request.tool_choice else None,
        "parallel_tool_calls": request.parallel_tool_calls,
        "json_schema": [request.json_schema.name, request.json_schema.schema, request.json_schema.strict]
        if request.json_schema else None,
        "reasoning_effort": request.reasoning_effort,
        "thinking_budget": request.thinking_budget,
        "seed": request.seed,
    }
    fields.update({k: v for k, v in optional.items() if v is not None})
    return fields


def digest(payload: dict[str, Any]) -> str:
    """`v1:` + SHA-256 hex of the payload's canonical JSON."""
    text = json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return f"{KEY_VERSION}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"


def cache_key(request: ChatRequest, *, route: str, tenant: str | None) -> str:
    """The exact-cache key of `request` served by `route`, scoped to `tenant` (None: shared)."""
    payload = canonical_fields(request, route=route, tenant=tenant)
    payload["messages"] = [message_fields(m) for m in request.messages]
    return digest(payload)


# ------------------------------------------------------------------------------------------
# Policy
# ------------------------------------------------------------------------------------------


def should_cache(
    request: ChatRequest,
    mode: CacheMode | None,
    *,
    max_temperature: float = DEFAULT_MAX_TEMPERATURE,
) -> bool:
    """`mode` is the request's `cache` field (None when absent). An explicit "exact" or
    "semantic" opts in, "off" opts out; otherwise only (near-)deterministic requests are cached:
    temperature <= `max_temperature`, an absent temperature counting as the provider default 1.0."""
    if mode == "off" or request.logprobs:  # the cache keeps no log-probabilities
        return False
    if mode in ("exact", "semantic"):
        return True
    temperature = (
        PROVIDER_DEFAULT_TEMPERATURE if request.temperature is None else request.temperature
    )
    return temperature <= max_temperature


@dataclass(frozen=True, slots=True)
class CachePolicy:
    ttl_s: float = DEFAULT_TTL_S
    max_temperature: float = DEFAULT_MAX_TEMPERATURE
    #: one cache for all tenants (operator's choice); by default each API key owner has its own
    shared: bool = False
    #: use cases whose requests use the semantic layer without asking
    semantic_use_cases: frozenset[str] = frozenset()

    def cacheable(self, request: ChatRequest, mode: CacheMode | None) -> bool:
        return should_cache(request, mode, max_temperature=self.max_temperature)

    def semantic(self, mode: CacheMode | None, use_case: str | None) -> bool:
        return mode == "semantic" or (mode is None and use_case in self.semantic_use_cases)

    def scope(self, tenant: str | None) -> str | None:
        return None if self.shared else tenant
