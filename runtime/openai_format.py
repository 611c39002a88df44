"""Shaping gateway results as OpenAI chat-completion objects (the OpenAI-compatible API)."""
from __future__ import annotations

import time
from typing import Any

from providers.types import Message
from runtime.router import RoutedResponse
from runtime.schemas import ChatCompletionBody

ROLE_MAP = {"developer": "system"}


def messages_from_body(body: ChatCompletionBody) -> tuple[Message, ...]:
    return tuple(Message(ROLE_MAP.get(m.role, m.role), m.text()) for m in body.messages)  # type: ignore[arg-type]


def switchboard_headers(r: RoutedResponse, request_id: str) -> dict[str, str]:
    return {
        "x-request-id": request_id,
        "x-switchboard-platform": r.response.platform,
        "x-switchboard-model": r.response.model,
        "x-switchboard-chain": r.chain,
        "x-switchboard-cost-usd": f"{r.cost_usd:.8f}",
        "x-switchboard-fallback": "true" if r.fallback_used else "false",
        "x-switchboard-attempts": str(r.attempts),
    }


def completion_object(r: RoutedResponse, request_id: str, requested_model: str) -> dict[str, Any]:
    resp = r.response
    return {
        "id": "chatcmpl-" + request_id.removeprefix("req_"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{resp.platform}/{resp.model}",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": resp.text},
                "finish_reason": resp.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": resp.usage.input_tokens,
            "completion_tokens": resp.usage.output_tokens,
            "total_tokens": resp.usage.total_tokens,
        },
        "switchboard": {
            "requested_model": requested_model,
            "platform": resp.platform,
            "model": resp.model,
            "chain": r.chain,
            "cost_usd": r.cost_usd,
            "latency_ms": round(r.latency_ms, 3),
            "attempts": r.attempts,
            "fallback_used": r.fallback_used,
        },
    }
