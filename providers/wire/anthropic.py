"""The Anthropic Messages protocol (POST /v1/messages).

Bodies are mapped in anthropic_messages.py; this module reads answers, streams and errors.
Errors carry a `type` (`overloaded_error`, `rate_limit_error`, ...) that decides the taxonomy
class.
"""
from __future__ import annotations

from typing import Any, Mapping

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import (
    ChatRequest,
    ChatResponse,
    ErrorKind,
    FinishReason,
    ProviderError,
    ServerError,
    StreamEvent,
)
from providers.wire.base import Endpoint, HttpCall
from providers.wire.errors import (
    error_object_and_wait,
    kind_for_status,
    load_chunk,
    make_error,
    text_field,
)
from providers.wire.anthropic_messages import (
    blocks_of, request_to_wire, thinking_of, tool_calls_of, usage_from_wire,
)
from providers.wire.sse import SSEEvent, SSEStreamDecoder

API_VERSION = "2023-06-01"

STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

ERROR_TYPES: dict[str, ErrorKind] = {
    "authentication_error": "authentication",
    "permission_error": "authentication",
    "not_found_error": "model_not_found",
    "billing_error": "out_of_credit",
    "rate_limit_error": "rate_limited",
    "overloaded_error": "overloaded",
    "timeout_error": "timeout",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
}


def build_body(request: ChatRequest, model_id: str, *, stream: bool) -> dict[str, Any]:
    return request_to_wire(request, model_id, stream=stream)


def stop_reason(raw: Any) -> FinishReason:
    return STOP_REASONS.get(str(raw), "stop") if raw else "stop"


def classify(status: int | None, etype: str, message: str) -> ErrorKind:
    """An Anthropic error (`{"type", "message"}`) → taxonomy kind. The generic `api_error` is
    judged by status (a 503 is an overload, a 500 a server error)."""
    text = message.lower()
    if "prompt is too long" in text:
        return "context_too_long"
    if "credit balance is too low" in text:
        return "out_of_credit"
    if etype in ERROR_TYPES:
        return ERROR_TYPES[etype]
    return kind_for_status(status)


def error_from_object(
    error: Any,
    *,
    status: int | None,
    platform: str,
    model: str,
    retry_after_s: float | None = None,
) -> ProviderError:
    etype, message = text_field(error, "type"), text_field(error, "message")
    kind = classify(status, etype, message)
    return make_error(
        kind, message or etype, platform=platform, model=model, status=status,
        retry_after_s=retry_after_s,
    )


class AnthropicStreamDecoder(SSEStreamDecoder):
    """`message_start` (input tokens) → content blocks (`content_block_start`, deltas,
    `content_block_stop`) → `message_delta` (stop_reason, output tokens) → `message_stop`.
    Text deltas become `delta` events, `thinking_delta`/`signature_delta` `reasoning` events, and
    a `tool_use` block becomes `tool_call` events (its start names the call, each
    `input_json_delta` carries an arguments fragment), numbered in order of the tool blocks.
    `ping` is skipped; `event: error` raises the typed error; a malformed chunk `ServerError`."""

    def __init__(self, *, platform: str, model: str) -> None:
        super().__init__(platform=platform, model=model)
        self._usage_raw: dict[str, Any] = {}
        self._tool_index: dict[int, int] = {}  # content block index -> tool call index

    def _handle(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        data = load_chunk(event.data, platform=self.platform, model=self.model)
        kind = text_field(data, "type") or event.event or ""
        if kind == "error":
            raise error_from_object(
                data.get("error"), status=None, platform=self.platform, model=self.model
            )
        if kind == "message_start":
            self._count((data.get("message") or {}).get("usage"))
        elif kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self._tool_index.setdefault(int(data.get("index") or 0), len(self._tool_index))
                out.append(StreamEvent("tool_call", index=index, tool_id=block.get("id"), tool_name=block.get("name")))
        elif kind == "content_block_delta":
            self._block_delta(int(data.get("index") or 0), data.get("delta") or {}, out)
        elif kind == "message_delta":
            self._count(data.get("usage"))
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self._finish_reason = stop_reason(reason)
        elif kind == "message_stop":
            self._finish(out)

    def _block_delta(self, block: int, delta: dict[str, Any], out: list[StreamEvent]) -> None:
        dtype = delta.get("type")
        if dtype == "text_delta":
            self._delta(text_field(delta, "text"), out)
        elif dtype == "input_json_delta" and block in self._tool_index:
            out.append(StreamEvent("tool_call", index=self._tool_index[block],
                                   arguments=text_field(delta, "partial_json")))
        elif dtype == "thinking_delta":
            out.append(StreamEvent("reasoning", text=text_field(delta, "thinking")))
        elif dtype == "signature_delta":
            out.append(StreamEvent("reasoning", signature=text_field(delta, "signature")))

    def _count(self, usage: object) -> None:
        """Usage counts are cumulative: the latest value of each wins."""
        if not isinstance(usage, dict):
            return
        self._usage_raw.update({k: v for k, v in usage.items() if v is not None})
        self._usage = usage_from_wire(self._usage_raw)


class AnthropicAdapter:
    """WireAdapter for Anthropic. The clock gives wall time for HTTP-date retry-after."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock

    def build_call(
        self, request: ChatRequest, model_id: str, endpoint: Endpoint, *, stream: bool = False
    ) -> HttpCall:
        headers = {
            "x-api-key": endpoint.api_key,
            "anthropic-version": API_VERSION,
            "content-type": "application/json",
        }
        if stream:
            headers["accept"] = "text/event-stream"
        return HttpCall(
            method="POST",
            url=endpoint.base_url.rstrip("/") + "/v1/messages",
            headers=headers,
            json=build_body(request, model_id, stream=stream),
        )

    def parse_response(self, body: Mapping[str, Any], *, platform: str, model: str) -> ChatResponse:
        content = body.get("content")
        if not isinstance(content, list):
            raise ServerError("response without content", platform=platform, model=model)
        blocks = blocks_of(content)
        thinking = thinking_of(blocks)
        return ChatResponse(
            text="".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text"),
            usage=usage_from_wire(body.get("usage")),
            finish_reason=stop_reason(body.get("stop_reason")),
            platform=platform,
            model=model,
            upstream_id=text_field(body, "id") or None,
            tool_calls=tool_calls_of(blocks),
            reasoning="".join(t.text for t in thinking),
            thinking=thinking,
        )

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        platform: str,
        model: str,
    ) -> ProviderError:
        error, wait = error_object_and_wait(headers, body, self._clock.time())
        return error_from_object(
            error, status=status, platform=platform, model=model, retry_after_s=wait
        )

    def stream_decoder(self, *, platform: str, model: str) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder(platform=platform, model=model)


ADAPTER = AnthropicAdapter()
