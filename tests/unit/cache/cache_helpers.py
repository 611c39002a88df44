"""Request and answer factories shared by the cache tests."""
from __future__ import annotations

from typing import Any

from providers.types import ChatRequest, Message, Usage
from runtime.cache.entries import CachedAnswer


def make_request(
    user: str = "What is the capital of France?",
    *,
    system: str | None = "You are concise.",
    **fields: Any,
) -> ChatRequest:
    messages = ([Message("system", system)] if system is not None else []) + [Message("user", user)]
    fields.setdefault("temperature", 0.0)
    fields.setdefault("max_tokens", 256)
    return ChatRequest(messages=tuple(messages), **fields)


def make_answer(text: str = "Paris.", *, cost_usd: float = 0.0125, created_at: float = 0.0) -> CachedAnswer:
    return CachedAnswer(
        text=text,
        finish_reason="stop",
        usage=Usage(input_tokens=20, output_tokens=3),
        platform="openai",
        model="gpt-4o",
        cost_usd=cost_usd,
        created_at=created_at,
    )
