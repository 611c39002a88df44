"""Wire protocols: one module per protocol family, each exposing a `WireAdapter`.

A platform is configuration (an `Endpoint`), not a class: OpenAI, Groq and OpenRouter all use
`openai`; Anthropic uses `anthropic`; Gemini uses `gemini`.
"""
from __future__ import annotations

from providers.wire import anthropic, gemini, openai
from providers.wire.base import WireAdapter

_ADAPTERS: dict[str, WireAdapter] = {
    "openai": openai.ADAPTER,
    "anthropic": anthropic.ADAPTER,
    "gemini": gemini.ADAPTER,
}


def adapter_for(protocol: str) -> WireAdapter:
    try:
        return _ADAPTERS[protocol]
    except KeyError:
        raise ValueError(f"unknown wire protocol {protocol!r}") from None
