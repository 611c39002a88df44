"""What every protocol shares: the neutral request, the neutral error, stream frames, and the
`Dialect` interface each vendor's module implements."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Protocol

from starlette.requests import Request
from starlette.responses import Response

from providers.catalog import Catalog, ModelSpec
from providers.simulator.answers import ToolUse
from providers.simulator.limiter import LimitState
from providers.simulator.text import Completion

ErrorKind = Literal[
    "auth_missing",  # no key
    "auth_invalid",  # a key starting with "invalid" (echoed in the message)
    "bad_request",
    "model_not_found",
    "model_retired",
    "context_too_long",
    "payment_required",
    "insufficient_quota",
    "rate_limited",
    "server_error",  # any 5xx; 529 = overloaded
]


@dataclass(frozen=True, slots=True)
class SimRequest:
    """A chat request, whatever protocol it came in."""

    model: str  # the name the client asked for
    prompt_texts: tuple[str, ...]  # every message text, system prompt included
    last_user: str
    max_tokens: int | None
    json_mode: bool
    stream: bool
    include_usage: bool = False
    sse: bool = True  # False: a stream sent as one JSON array (Gemini without `alt=sse`)
    tools: ToolUse = ToolUse()
    schema: Mapping[str, Any] | None = None  # a JSON schema the answer must follow
    images: tuple[str, ...] = ()  # each image received: its media type, or "url"
    reasoning: bool = False
    logprobs: bool = False
    top_logprobs: int | None = None


class SimError(Exception):
    """A refusal, rendered by each dialect in its vendor's shape."""

    def __init__(
        self,
        kind: ErrorKind,
        status: int,
        detail: str = "",
        *,
        model: str = "",
        key: str | None = None,
        limit: LimitState | None = None,
        retry_after_s: float | None = None,
        context: tuple[int, int] | None = None,  # (context window, prompt tokens)
    ) -> None:
        super().__init__(detail or kind)
        self.kind = kind
        self.status = status
        self.detail = detail
        self.model = model
        self.key = key
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.context = context


@dataclass(frozen=True, slots=True)
class Frame:
    """One piece of a streamed body; `tokens` paces it (output tokens it carries)."""

    data: bytes
    tokens: int = 0


@dataclass(frozen=True, slots=True)
class StreamPlan:
    preamble: tuple[bytes, ...]  # sent at once, before the first-token delay
    frames: tuple[Frame, ...]
    media_type: str = "text/event-stream"


class Dialect(Protocol):
    """One vendor's wire protocol, as the simulator speaks it."""

    platform: str

    def api_key(self, request: Request) -> str | None: ...

    def parse(self, body: Any, request: Request, path_model: str | None) -> SimRequest:
        """The neutral request, or SimError("bad_request")."""

    def error(self, err: SimError) -> Response: ...

    def limit_headers(self, state: LimitState, now: float) -> dict[str, str]: ...

    def response(
        self, req: SimRequest, spec: ModelSpec, done: Completion, headers: dict[str, str]
    ) -> Response: ...

    def stream(self, req: SimRequest, spec: ModelSpec, done: Completion) -> StreamPlan: ...

    def models(self, catalog: Catalog, request: Request) -> Response:
        """The vendor's model listing (live catalog models of this platform)."""

    def model_entry(self, spec: ModelSpec) -> dict[str, Any]:
        """One model as the vendor describes it (listing and retrieval)."""


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json")


def retry_after_header(seconds: float | None) -> dict[str, str]:
    if seconds is None:
        return {}
    return {"retry-after": str(max(0, int(-(-seconds // 1))))}


def text_of(content: Any) -> str:
    """Text of a message content: a string, or a list of text parts/blocks."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    raise SimError("bad_request", 400, "message content must be a string or a list of parts")


def int_field(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise SimError("bad_request", 400, f"{name} must be a positive integer")
            return value
    return None


def bearer_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return key.strip() or None
