"""The OpenAI chat-completions protocol, spoken by OpenAI, Groq and OpenRouter.

Vendor differences handled here: Groq reports streaming usage in `x_groq.usage` and retires
models with 400 `model_decommissioned`; OpenRouter sends integer error codes, usage in every
stream, and mid-stream failures as `finish_reason: "error"` next to an `error` object.
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
from providers.wire.openai_chat import reasoning_text, request_to_wire, tool_call_from_wire, usage_from_wire
from providers.wire.sse import SSEEvent, SSEStreamDecoder

FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "error": "error",
}


def build_body(request: ChatRequest, model_id: str, *, stream: bool) -> dict[str, Any]:
    return request_to_wire(request, model_id, stream=stream)


def finish_reason(raw: Any) -> FinishReason:
    return FINISH_REASONS.get(str(raw), "stop") if raw else "stop"


def usage_of(obj: Any) -> Usage | None:
    """`usage` (OpenAI, OpenRouter) or `x_groq.usage` (Groq streams), if present."""
    if not isinstance(obj, dict):
        return None
    return usage_from_wire(obj.get("usage") or (obj.get("x_groq") or {}).get("usage"))


def tool_call_events(deltas: Any) -> list[StreamEvent]:
    """`delta.tool_calls` pieces → `tool_call` events (the first piece of a call names it)."""
    out: list[StreamEvent] = []
    for d in deltas if isinstance(deltas, list) else ():
        if not isinstance(d, dict):
            continue
        fn = d.get("function") if isinstance(d.get("function"), dict) else {}
        index = d.get("index")
        out.append(StreamEvent("tool_call", index=int(index) if isinstance(index, int) else 0,
                               tool_id=d.get("id") or None, tool_name=fn.get("name") or None,
                               arguments=str(fn.get("arguments") or "")))
    return out


def classify(status: int | None, code: str, etype: str, message: str) -> ErrorKind:
    """An OpenAI-family error object → taxonomy kind. `code` may be OpenRouter's integer
    status as text; `status` is None for errors inside a stream."""
    text = message.lower()
    if code == "context_length_exceeded" or "maximum context length" in text:
        return "context_too_long"
    if code in ("model_decommissioned", "model_not_found") or "not a valid model id" in text:
        return "model_not_found"
    if "insufficient_quota" in (code, etype) or code == "payment_required" or (
        "insufficient credits" in text
    ):
        return "out_of_credit"
    if code == "invalid_api_key":
        return "authentication"
    if status is None and code.isdigit():
        status = int(code)  # OpenRouter: {"error": {"code": 502, ...}}
    if status is None:
        return _kind_for_type(code, etype)
    return kind_for_status(status)


def _kind_for_type(code: str, etype: str) -> ErrorKind:
    """For errors without an HTTP status (mid-stream): judge by code and type."""
    if code == "rate_limit_exceeded" or etype in ("rate_limit_exceeded", "requests", "tokens"):
        return "rate_limited"
    if "overloaded" in (code, etype) or code == "server_overloaded":
        return "overloaded"
    if etype == "invalid_request_error":
        return "bad_request"
    return "server_error"


def error_from_object(
    error: Any,
    *,
    status: int | None,
    platform: str,
    model: str,
    retry_after_s: float | None = None,
) -> ProviderError:
    """Map an `{"message", "type", "code"}` object (body or stream chunk) to a typed error."""
    code, etype, message = (text_field(error, k) for k in ("code", "type", "message"))
    if not message and isinstance(error, str):
        message = error
    kind = classify(status, code, etype, message)
    return make_error(
        kind, message, platform=platform, model=model, status=status, retry_after_s=retry_after_s
    )


class OpenAIStreamDecoder(SSEStreamDecoder):
    """`data:` chunks with `choices[0].delta.content`, then `data: [DONE]`. Usage arrives in a
    last chunk (`stream_options.include_usage`), in Groq's `x_groq.usage`, or in OpenRouter's
    chunks. A chunk carrying `error` (OpenAI) or `finish_reason: "error"` (OpenRouter) raises the
    typed error; a malformed chunk raises `ServerError`."""

    def _handle(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        if event.data.strip() == "[DONE]":
            self._finish(out)
            return
        chunk = load_chunk(event.data, platform=self.platform, model=self.model)
        if chunk.get("error"):
            raise error_from_object(
                chunk["error"], status=None, platform=self.platform, model=self.model
            )
        self._usage = usage_of(chunk) or self._usage
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            return
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        reasoning = reasoning_text(delta)
        if reasoning:
            out.append(StreamEvent("reasoning", text=reasoning))
        text = text_field(delta, "content")
        if text:
            out.append(StreamEvent("delta", text=text, logprobs=choice.get("logprobs")))
        out.extend(tool_call_events(delta.get("tool_calls")))
        if choice.get("finish_reason") == "error":
            raise ServerError(
                "upstream ended the stream with an error", platform=self.platform, model=self.model
            )
        if choice.get("finish_reason"):
            self._finish_reason = finish_reason(choice["finish_reason"])


class OpenAIAdapter:
    """WireAdapter for the OpenAI protocol. The clock gives wall time for HTTP-date retry-after."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock

    def build_call(
        self, request: ChatRequest, model_id: str, endpoint: Endpoint, *, stream: bool = False
    ) -> HttpCall:
        headers = {"Authorization": f"Bearer {endpoint.api_key}", "content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        return HttpCall(
            method="POST",
            url=endpoint.base_url.rstrip("/") + "/chat/completions",
            headers=headers,
            json=build_body(request, model_id, stream=stream),
        )

    def parse_response(self, body: Mapping[str, Any], *, platform: str, model: str) -> ChatResponse:
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            if isinstance(body.get("error"), dict):  # OpenRouter can answer 200 with an error
                raise error_from_object(body["error"], status=None, platform=platform, model=model)
            raise ServerError("response without choices", platform=platform, model=model)
        choice = choices[0]
        message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
        calls = tuple(tool_call_from_wire(c) for c in message.get("tool_calls") or () if isinstance(c, dict))
        return ChatResponse(
            text=str(message.get("content") or ""),
            usage=usage_of(body) or Usage(),
            finish_reason=finish_reason(choice.get("finish_reason")),
            platform=platform,
            model=model,
            upstream_id=text_field(body, "id") or None,
            tool_calls=calls,
            reasoning=reasoning_text(message),
            logprobs=choice.get("logprobs"),
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
        error, wait = error_object_and_wait(headers, body, self._clock.time(), bare_body_is_error=True)
        return error_from_object(
            error, status=status, platform=platform, model=model, retry_after_s=wait
        )

    def stream_decoder(self, *, platform: str, model: str) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(platform=platform, model=model)


ADAPTER = OpenAIAdapter()
