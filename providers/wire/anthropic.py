"""The Anthropic Messages protocol (POST /v1/messages).

Differences from the OpenAI shape: the system prompt is a top-level field, `max_tokens` is
required, there is no JSON mode (we ask for JSON in the system prompt), and errors carry a
`type` (`overloaded_error`, `rate_limit_error`, ...) that decides the taxonomy class.
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
    Usage,
)
from providers.wire.base import Endpoint, HttpCall
from providers.wire.errors import (
    error_object_and_wait,
    kind_for_status,
    load_chunk,
    make_error,
    text_field,
)
from providers.wire.sse import SSEEvent, SSEStreamDecoder

API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024
JSON_INSTRUCTION = (
    "Respond with a single JSON object and nothing else: no prose, no code fences."
)

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


def system_text(request: ChatRequest) -> str | None:
    """The top-level system prompt, with the JSON instruction appended in JSON mode."""
    system = request.system_prompt
    if request.response_format == "json_object":
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    return system


def build_body(request: ChatRequest, model_id: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model_id,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": [{"role": m.role, "content": m.content} for m in request.conversation],
    }
    system = system_text(request)
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if stream:
        body["stream"] = True
    return body


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
    """`message_start` (input tokens) → `content_block_delta` (`text_delta`) … → `message_delta`
    (stop_reason, output tokens) → `message_stop`. `ping` and non-text blocks are skipped;
    `event: error` raises the typed error; a malformed chunk raises `ServerError`."""

    def __init__(self, *, platform: str, model: str) -> None:
        super().__init__(platform=platform, model=model)
        self._input_tokens = 0
        self._output_tokens = 0

    def _handle(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        data = load_chunk(event.data, platform=self.platform, model=self.model)
        kind = text_field(data, "type") or event.event or ""
        if kind == "error":
            raise error_from_object(
                data.get("error"), status=None, platform=self.platform, model=self.model
            )
        if kind == "message_start":
            self._count((data.get("message") or {}).get("usage"))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                self._delta(text_field(delta, "text"), out)
        elif kind == "message_delta":
            self._count(data.get("usage"))
            reason = (data.get("delta") or {}).get("stop_reason")
            if reason:
                self._finish_reason = stop_reason(reason)
        elif kind == "message_stop":
            self._finish(out)

    def _count(self, usage: object) -> None:
        """Usage counts are cumulative: the latest value of each wins."""
        if not isinstance(usage, dict):
            return
        if usage.get("input_tokens") is not None:
            self._input_tokens = int(usage["input_tokens"])
        if usage.get("output_tokens") is not None:
            self._output_tokens = int(usage["output_tokens"])
        self._usage = Usage(self._input_tokens, self._output_tokens)


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
        text = "".join(
            str(block.get("text") or "")
            for block in content
            if isinstance(block, dict) and block.get("type") == "text"
        )
        usage = body.get("usage") or {}
        return ChatResponse(
            text=text,
            usage=Usage(
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
            ),
            finish_reason=stop_reason(body.get("stop_reason")),
            platform=platform,
            model=model,
            upstream_id=text_field(body, "id") or None,
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
