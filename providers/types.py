"""Platform-neutral request/response types and the upstream error taxonomy.

Everything that crosses an actor boundary is a small frozen dataclass (cheap to pickle).
Errors are values as much as exceptions: a ProviderActor returns them instead of raising, so a
refusal costs one normal actor reply, not a Ray exception with a traceback.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from typing import Literal

Role = Literal["system", "user", "assistant"]
ResponseFormat = Literal["text", "json_object"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls", "error"]


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


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

    @property
    def system_prompt(self) -> str | None:
        parts = [m.content for m in self.messages if m.role == "system"]
        return "\n\n".join(parts) if parts else None

    @property
    def conversation(self) -> tuple[Message, ...]:
        """The non-system messages, in order."""
        return tuple(m for m in self.messages if m.role != "system")

    def for_model(self, model: str) -> "ChatRequest":
        return replace(self, model=model)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

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


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One normalized streaming event: text deltas, then exactly one final `done` event."""

    kind: Literal["delta", "done"]
    text: str = ""
    usage: Usage | None = None
    finish_reason: FinishReason | None = None


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
    ) -> None:
        super().__init__(message)
        self.message = message
        self.platform = platform
        self.model = model
        self.status = status
        self.retry_after_s = retry_after_s
        self.attempts = attempts  # upstream attempts made before giving up (0: never sent)

    def __reduce__(self):  # keyword-only __init__: pickle needs help across actor hops
        return (
            _rebuild_error,
            (type(self), self.message, self.platform, self.model, self.status, self.retry_after_s, self.attempts),
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, platform={self.platform!r}, "
            f"model={self.model!r}, status={self.status!r}, retry_after_s={self.retry_after_s!r})"
        )


def _rebuild_error(cls, message, platform, model, status, retry_after_s, attempts=1):
    return cls(message, platform=platform, model=model, status=status, retry_after_s=retry_after_s, attempts=attempts)


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
    )
}
