"""Platform-neutral request/response types and the upstream error taxonomy.

Everything that crosses an actor boundary is a small frozen dataclass (cheap to pickle).
Errors are values as much as exceptions: a ProviderActor returns them instead of raising, so a
refusal costs one normal actor reply, not a Ray exception with a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Literal, Mapping

from providers.request_ids import new_request_id

Role = Literal["system", "user", "assistant", "tool"]
ResponseFormat = Literal["text", "json_object", "json_schema"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]
ToolChoiceMode = Literal["auto", "none", "required", "function"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


# --------------------------------------------------------------------------------------------
# Content
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image, either as a URL (`url`: http(s), passed to vendors that fetch URLs themselves;
    the gateway never fetches it) or inline (`data`: base64, with its `media_type`)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None
    detail: str | None = None  # OpenAI's "low" | "high" | "auto"

    @property
    def is_inline(self) -> bool:
        return self.data is not None


ContentPart = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. `arguments` is the JSON text the model produced, unchanged;
    `signature` is an opaque token some vendors attach (Gemini's thoughtSignature) that must be
    sent back with the call on the next turn."""

    id: str
    name: str
    arguments: str = "{}"
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class Thinking:
    """A reasoning block as the vendor returned it (Anthropic's `thinking` with its signature, or
    `redacted_thinking` data), kept so that a later turn can send it back where required."""

    text: str = ""
    signature: str | None = None
    redacted: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. `content` is the turn's text (its text parts joined); `parts` is set when the
    turn has more than text (images), in order. An assistant turn may carry `tool_calls` (and
    `thinking`) beside its text; a `tool` turn answers the call `tool_call_id`."""

    role: Role
    content: str = ""
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None
    thinking: tuple[Thinking, ...] = ()

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(p for p in self.parts if isinstance(p, ImagePart))

    @property
    def content_parts(self) -> tuple[ContentPart, ...]:
        """The content as parts, whichever way it was given."""
        if self.parts:
            return self.parts
        return (TextPart(self.content),) if self.content else ()


# --------------------------------------------------------------------------------------------
# Request options
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call. `parameters` is its JSON schema (an object schema)."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: ToolChoiceMode = "auto"
    name: str | None = None  # with mode "function": the one tool the model must call


@dataclass(frozen=True, slots=True)
class JsonSchemaFormat:
    name: str
    schema: Mapping[str, Any]
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One normalized chat call. `model` is filled per attempt by the router (catalog id)."""

    messages: tuple[Message, ...]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    response_format: ResponseFormat = "text"
    request_id: str = field(default_factory=new_request_id)
    model: str = ""
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    json_schema: JsonSchemaFormat | None = None  # with response_format "json_schema"
    reasoning_effort: ReasoningEffort | None = None
    thinking_budget: int | None = None  # tokens of reasoning allowed (Anthropic, Gemini)
    seed: int | None = None
    logprobs: bool = False  # the answer's token log-probabilities (OpenAI-protocol vendors)
    top_logprobs: int | None = None

    @property
    def system_prompt(self) -> str | None:
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The non-system messages, in order."""
        return tuple(m for m in self.messages if m.role != "system")

    @property
    def images(self) -> tuple[ImagePart, ...]:
        return tuple(i for m in self.messages for i in m.images)

    @property
    def wants_reasoning(self) -> bool:
        return self.reasoning_effort is not None or self.thinking_budget is not None

    def for_model(self, model: str) -> "ChatRequest":
        return replace(self, model=model)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0  # part of output_tokens, where the vendor says
    cached_tokens: int = 0  # part of input_tokens read from the vendor's prompt cache

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A provider's normalized answer for one attempt."""

    text: str
    usage: Usage
    finish_reason: FinishReason
    platform: str
    model: str
    upstream_id: str | None = None
    latency_ms: float = 0.0
    attempts: int = 1  # upstream attempts the provider actor made (retries included)
    unanswered: int = 0  # of those, sent and never answered (see ProviderError.unanswered)
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    thinking: tuple[Thinking, ...] = ()
    logprobs: Any = None  # the vendor's logprobs object, as it sent it (OpenAI's shape)


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One normalized streaming event: deltas, then exactly one final `done` event.

    - `delta`: `text` (answer text).
    - `reasoning`: `text` (reasoning text, where the vendor streams it).
    - `tool_call`: a piece of tool call `index`: the first piece carries `tool_id` and
      `tool_name`, every piece may carry an `arguments` fragment (concatenated in order they are
      the call's arguments); `signature` where the vendor attaches one.
    - `done`: `usage` and `finish_reason`.
    """

    kind: Literal["delta", "reasoning", "tool_call", "done"]
    text: str = ""
    usage: Usage | None = None
    finish_reason: FinishReason | None = None
    index: int = 0
    tool_id: str | None = None
    tool_name: str | None = None
    arguments: str = ""
    signature: str | None = None
    logprobs: Any = None  # with a `delta`: the vendor's logprobs of that piece


def assemble_tool_calls(events: "Iterable[StreamEvent]") -> tuple[ToolCall, ...]:
    """The tool calls that a stream's `tool_call` events describe, by index, in index order."""
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if e.kind != "tool_call":
            continue
        call = calls.setdefault(e.index, {"id": None, "name": None, "args": [], "signature": None})
        call["id"] = call["id"] or e.tool_id
        call["name"] = call["name"] or e.tool_name
        call["signature"] = call["signature"] or e.signature
        call["args"].append(e.arguments)
    return tuple(
        ToolCall(c["id"] or f"call_{i}", c["name"] or "", "".join(c["args"]) or "{}", c["signature"])
        for i, c in sorted(calls.items())
    )


# --------------------------------------------------------------------------------------------
# Error taxonomy. Mapped once per wire protocol (providers/wire/*), mapped once to HTTP at the
# edge (runtime/http/errors.py).
# --------------------------------------------------------------------------------------------

ErrorKind = Literal[
    "authentication",
    "bad_request",
    "context_too_long",
    "model_not_found",
    "out_of_credit",
    "rate_limited",
    "overloaded",
    "server_error",
    "timeout",
    "connection",
    "stream_cut",
    "refused_rate_limited",
    "refused_breaker_open",
    "refused_disabled",
    "refused_lease_unavailable",
]


class SwitchboardError(Exception):
    """Base of every error Switchboard raises on purpose."""


class ProviderError(SwitchboardError):
    """An upstream call failed. `kind` is the taxonomy class; subclasses fix it."""

    kind: ErrorKind = "server_error"
    #: counts against the circuit breaker (5xx, overload, timeouts, connection, stream cut)
    breaker_failure: bool = True
    #: worth another attempt on the same model (after backoff)
    retryable: bool = True

    def __init__(
        self,
        message: str,
        *,
        platform: str = "",
        model: str = "",
        status: int | None = None,
        retry_after_s: float | None = None,
        attempts: int = 1,
        unanswered: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts  # upstream attempts made before giving up (0: never sent)
        # attempts sent that got no answer (a read timeout, a connection lost after sending): the
        # vendor may have run, and billed, them; the ledger charges them at their worst case
        self.unanswered = unanswered

    def __reduce__(self):  # keyword-only __init__: pickle needs help across actor hops
        return (
            _rebuild_error,
            (type(self), self.message, self.platform, self.model, self.status, self.retry_after_s, self.attempts,
             self.unanswered),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, platform={self.platform!r}, "
            f"model={self.model!r}, status={self.status!r}, retry_after_s={self.retry_after_s!r})"
        )


def _rebuild_error(cls, message, platform, model, status, retry_after_s, attempts=1, unanswered=0):
    return cls(message, platform=platform, model=model, status=status, retry_after_s=retry_after_s, attempts=attempts,
               unanswered=unanswered)


class AuthenticationError(ProviderError):
    kind = "authentication"
    breaker_failure = False
    retryable = False


class BadRequestError(ProviderError):
    kind = "bad_request"
    breaker_failure = False
    retryable = False


class ContextTooLongError(BadRequestError):
    kind = "context_too_long"


class ModelNotFoundError(ProviderError):
    kind = "model_not_found"
    breaker_failure = False
    retryable = False


class OutOfCreditError(ProviderError):
    kind = "out_of_credit"
    breaker_failure = False
    retryable = False


class RateLimitedError(ProviderError):
    """A capacity signal: the model cools down until its retry time and the router falls back
    (no retry on the same model)."""

    kind = "rate_limited"
    breaker_failure = False
    retryable = False


class OverloadedError(ProviderError):
    kind = "overloaded"


class ServerError(ProviderError):
    kind = "server_error"


class UpstreamTimeoutError(ProviderError):
    kind = "timeout"


class UpstreamConnectionError(ProviderError):
    """No connection (refused, reset, DNS). Falling back beats retrying a host that is down."""

    kind = "connection"
    retryable = False


class StreamCutError(ProviderError):
    kind = "stream_cut"
    retryable = False  # bytes may already be with the client; the router decides


class Refusal(ProviderError):
    """The ProviderActor did not call upstream: the platform cannot take this request now.
    `retry_after_s` says when it could (None: not until an operator acts). Never a breaker
    failure, never retried on the same platform: the router moves on at once."""

    breaker_failure = False
    retryable = False


class RateLimitRefusal(Refusal):
    kind = "refused_rate_limited"


class BreakerOpenRefusal(Refusal):
    kind = "refused_breaker_open"


class PlatformDisabledRefusal(Refusal):
    kind = "refused_disabled"


class LeaseUnavailableRefusal(Refusal):
    """The replica could not renew its lease with the platform's owner (the ProviderActor did
    not answer): it refuses rather than guess at the limits."""

    kind = "refused_lease_unavailable"


ERROR_CLASSES: dict[str, type[ProviderError]] = {
    cls.kind: cls
    for cls in (
        AuthenticationError,
        BadRequestError,
        ContextTooLongError,
        ModelNotFoundError,
        OutOfCreditError,
        RateLimitedError,
        OverloadedError,
        ServerError,
        UpstreamTimeoutError,
        UpstreamConnectionError,
        StreamCutError,
        RateLimitRefusal,
        BreakerOpenRefusal,
        PlatformDisabledRefusal,
        LeaseUnavailableRefusal,
    )
}
