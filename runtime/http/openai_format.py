"""Shaping gateway results as OpenAI chat-completion objects (the OpenAI-compatible API)."""
from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator

from providers.types import Message, ProviderError, StreamEvent
from runtime.core.router import RoutedResponse, RoutedStream
from runtime.http.schemas import ChatCompletionBody

ROLE_MAP = {"developer": "system"}


def messages_from_body(body: ChatCompletionBody) -> tuple[Message, ...]:
    return tuple(Message(ROLE_MAP.get(m.role, m.role), m.text()) for m in body.messages)  # type: ignore[arg-type]


def switchboard_headers(r: RoutedResponse, request_id: str) -> dict[str, str]:
    return {
        "x-switchboard-request-id": request_id,
        "x-switchboard-platform": r.response.platform,
        "x-switchboard-model": r.response.model,
        "x-switchboard-chain": r.chain,
        "x-switchboard-cost-usd": f"{r.cost_usd:.8f}",
        "x-switchboard-fallback": "true" if r.fallback_used else "false",
        "x-switchboard-attempts": str(r.attempts),
        "x-switchboard-cache": r.cache,
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
            "cache": r.cache,
        },
    }


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def stream_headers(s: RoutedStream, request_id: str) -> dict[str, str]:
    return {
        "x-switchboard-request-id": request_id,
        "x-switchboard-platform": s.platform,
        "x-switchboard-model": s.model.id,
        "x-switchboard-chain": s.chain,
        "x-switchboard-fallback": "true" if s.fallback_used else "false",
        "x-switchboard-attempts": str(s.attempts),
        "x-switchboard-cache": s.cache,
        "cache-control": "no-cache",
    }


async def sse_chunks(
    s: RoutedStream, events: AsyncIterator[StreamEvent], request_id: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """OpenAI `chat.completion.chunk` SSE, whichever platform serves: a role chunk, content
    chunks, a finish chunk, a usage chunk when asked, then `[DONE]`. An upstream failure after
    the first byte ends the stream with an OpenAI-style error event (no `[DONE]`)."""
    base = {
        "id": "chatcmpl-" + request_id.removeprefix("req_"),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": f"{s.platform}/{s.model.id}",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]})

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for event in events:
            if event.kind == "delta":
                if event.text:
                    yield chunk({"content": event.text})
                continue
            yield chunk({}, event.finish_reason or "stop")
            if include_usage and event.usage is not None:
                u = event.usage
                usage = {"prompt_tokens": u.input_tokens, "completion_tokens": u.output_tokens,
                         "total_tokens": u.total_tokens}
                yield _sse({**base, "choices": [], "usage": usage})
    except ProviderError as err:
        yield _sse({"error": {"type": err.kind, "message": f"{err.platform}: {err.message}",
                              "code": err.kind}})
        return
    yield _sse("[DONE]")
