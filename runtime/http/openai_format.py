"""Shaping gateway results as OpenAI chat-completion objects (the OpenAI-compatible API)."""
from __future__ import annotations

import json
import time
from typing import Any, AsyncIterator

from providers.types import ChatResponse, ProviderError, StreamEvent, Thinking, ToolCall
from providers.wire.openai_chat import call_id_out, thinking_to_wire, tool_call_to_wire, usage_to_wire
from runtime.core.router import RoutedResponse, RoutedStream


def assistant_message(resp: ChatResponse) -> dict[str, Any]:
    """The answer as an OpenAI assistant message: content (null beside tool calls, as OpenAI
    sends it), tool calls (their ids carrying any vendor signature), and reasoning where the
    vendor returned it (`reasoning_content`, `thinking_blocks` to send back next turn)."""
    message: dict[str, Any] = {"role": "assistant", "content": resp.text or (None if resp.tool_calls else "")}
    if resp.tool_calls:
        message["tool_calls"] = [tool_call_to_wire(c, front_door=True) for c in resp.tool_calls]
    if resp.reasoning:
        message["reasoning_content"] = resp.reasoning
    if resp.thinking:
        message["thinking_blocks"] = thinking_to_wire(resp.thinking)
    return message


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
                "message": assistant_message(resp),
                "finish_reason": resp.finish_reason,
                "logprobs": resp.logprobs,
            }
        ],
        "usage": usage_to_wire(resp.usage),
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

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]})

    yield chunk({"role": "assistant", "content": ""})
    reasoning: list[str] = []
    try:
        async for event in events:
            if event.kind == "done":
                yield chunk({}, event.finish_reason or "stop")
                if include_usage and event.usage is not None:
                    yield _sse({**base, "choices": [], "usage": usage_to_wire(event.usage)})
                continue
            delta = delta_of(event, reasoning)
            if delta:
                yield chunk(delta, logprobs=event.logprobs)
    except ProviderError as err:
        yield _sse({"error": {"type": err.kind, "message": f"{err.platform}: {err.message}",
                              "code": err.kind}})
        return
    yield _sse("[DONE]")


def delta_of(event: StreamEvent, reasoning: list[str]) -> dict[str, Any] | None:
    """One normalized stream event as an OpenAI chunk delta (None: nothing to send)."""
    if event.kind == "delta":
        return {"content": event.text} if event.text else None
    if event.kind == "reasoning":
        if event.signature:  # Anthropic closes a thinking block: send it whole, to be sent back
            block = thinking_to_wire((Thinking("".join(reasoning), event.signature),))
            reasoning.clear()
            return {"thinking_blocks": block}
        reasoning.append(event.text)
        return {"reasoning_content": event.text} if event.text else None
    piece: dict[str, Any] = {"index": event.index}
    if event.tool_id is not None:
        piece["id"] = call_id_out(ToolCall(event.tool_id, event.tool_name or "", signature=event.signature))
        piece["type"] = "function"
    function: dict[str, Any] = {"arguments": event.arguments}
    if event.tool_name is not None:
        function = {"name": event.tool_name, **function}
    piece["function"] = function
    return {"tool_calls": [piece]}
