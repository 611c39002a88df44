"""The Gemini API protocol (generativelanguage `v1beta/models/{model}:generateContent`).

Bodies are mapped in gemini_content.py; this module reads answers, streams and errors. Errors
are google.rpc statuses whose `details[]` carry the reason (`API_KEY_INVALID`) and the retry
delay (`RetryInfo`).
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

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
from providers.wire.gemini_content import (
    answer_text, finish_with_calls, parts_of, request_to_wire, thought_text, tool_calls_of, usage_from_wire,
)
from providers.wire.sse import SSEEvent, SSEStreamDecoder

FILTERED = frozenset(
    {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY"}
)
FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    **{name: "content_filter" for name in FILTERED},
    "MALFORMED_FUNCTION_CALL": "error",
}
STATUS_KINDS: dict[str, ErrorKind] = {
    "UNAUTHENTICATED": "authentication",
    "PERMISSION_DENIED": "authentication",
    "NOT_FOUND": "model_not_found",
    "RESOURCE_EXHAUSTED": "rate_limited",
    "UNAVAILABLE": "overloaded",
}
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})


def model_path(model_id: str) -> str:
    """`gemini-2.5-flash` or `models/gemini-2.5-flash` → `models/gemini-2.5-flash` (quoted)."""
    name = model_id.removeprefix("models/")
    return "models/" + quote(name, safe="-._~")


def build_body(request: ChatRequest) -> dict[str, Any]:
    return request_to_wire(request)


def finish_reason(raw: Any) -> FinishReason:
    return FINISH_REASONS.get(str(raw), "stop") if raw else "stop"


def candidate_text(candidate: Any) -> str:
    """The answer's text parts joined; thought summaries (`thought: true`) are left out."""
    return answer_text(parts_of(candidate))


def usage_of(body: Mapping[str, Any]) -> Usage | None:
    return usage_from_wire(body.get("usageMetadata"))


def classify(status: int | None, rpc_status: str, message: str, details: Any) -> ErrorKind:
    """A google.rpc error → taxonomy kind."""
    if _reasons(details) & _AUTH_REASONS:
        return "authentication"
    text = message.lower()
    if "input token count" in text and "exceeds the maximum" in text:
        return "context_too_long"
    if rpc_status in STATUS_KINDS:
        return STATUS_KINDS[rpc_status]
    return kind_for_status(status)


def _reasons(details: Any) -> set[str]:
    if not isinstance(details, list):
        return set()
    return {str(d.get("reason")) for d in details if isinstance(d, dict) and d.get("reason")}


def error_from_object(
    error: Any,
    *,
    status: int | None,
    platform: str,
    model: str,
    retry_after_s: float | None = None,
) -> ProviderError:
    message, rpc_status = text_field(error, "message"), text_field(error, "status")
    if status is None and text_field(error, "code").isdigit():
        status = int(text_field(error, "code"))
    details = error.get("details") if isinstance(error, dict) else None
    kind = classify(status, rpc_status, message, details)
    return make_error(
        kind, message or rpc_status, platform=platform, model=model, status=status,
        retry_after_s=retry_after_s,
    )


class GeminiStreamDecoder(SSEStreamDecoder):
    """`alt=sse` chunks, each a partial `GenerateContentResponse` with `usageMetadata` (the last
    one wins) and, on the last, `finishReason`. There is no terminator: end of body after a
    finish reason completes the stream, before one it is a cut. A chunk carrying `error` raises
    the typed error; a malformed chunk raises `ServerError`."""

    def __init__(self, *, platform: str, model: str) -> None:
        super().__init__(platform=platform, model=model)
        self._calls = 0

    def _handle(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        chunk = load_chunk(event.data, platform=self.platform, model=self.model)
        if chunk.get("error"):
            raise error_from_object(
                chunk["error"], status=None, platform=self.platform, model=self.model
            )
        self._usage = usage_of(chunk) or self._usage
        candidates = chunk.get("candidates")
        candidate = candidates[0] if isinstance(candidates, list) and candidates else None
        if isinstance(candidate, dict):
            parts = parts_of(candidate)
            thought = thought_text(parts)
            if thought:
                out.append(StreamEvent("reasoning", text=thought))
            self._delta(answer_text(parts), out)
            for call in tool_calls_of(parts):  # Gemini sends each call whole
                out.append(StreamEvent("tool_call", index=self._calls, tool_id=call.id, tool_name=call.name,
                                       arguments=call.arguments, signature=call.signature))
                self._calls += 1
            if candidate.get("finishReason"):
                reason = finish_reason(candidate["finishReason"])
                self._finish_reason = "tool_calls" if self._calls and reason == "stop" else reason
        elif (chunk.get("promptFeedback") or {}).get("blockReason"):
            self._finish_reason = "content_filter"

    def _at_eof(self, out: list[StreamEvent]) -> None:
        if self._finish_reason is not None:
            self._finish(out)


class GeminiAdapter:
    """WireAdapter for Gemini. The clock gives wall time for HTTP-date retry-after."""

    def __init__(self, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock

    def build_call(
        self, request: ChatRequest, model_id: str, endpoint: Endpoint, *, stream: bool = False
    ) -> HttpCall:
        action = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        headers = {"x-goog-api-key": endpoint.api_key, "content-type": "application/json"}
        if stream:
            headers["accept"] = "text/event-stream"
        return HttpCall(
            method="POST",
            url=f"{endpoint.base_url.rstrip('/')}/v1beta/{model_path(model_id)}{action}",
            headers=headers,
            json=build_body(request),
        )

    def parse_response(self, body: Mapping[str, Any], *, platform: str, model: str) -> ChatResponse:
        candidates = body.get("candidates")
        usage = usage_of(body) or Usage()
        upstream_id = text_field(body, "responseId") or None
        if not isinstance(candidates, list) or not candidates:
            feedback = body.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                return ChatResponse("", usage, "content_filter", platform, model, upstream_id)
            raise ServerError("response without candidates", platform=platform, model=model)
        candidate = candidates[0] if isinstance(candidates[0], dict) else {}
        parts = parts_of(candidate)
        calls = tool_calls_of(parts)
        return ChatResponse(
            text=answer_text(parts),
            usage=usage,
            finish_reason=finish_with_calls(finish_reason(candidate.get("finishReason")), calls),
            platform=platform,
            model=model,
            upstream_id=upstream_id,
            tool_calls=calls,
            reasoning=thought_text(parts),
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

    def stream_decoder(self, *, platform: str, model: str) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(platform=platform, model=model)


ADAPTER = GeminiAdapter()
