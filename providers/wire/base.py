"""What every wire protocol module shares: where a platform is (`Endpoint`), one HTTP call to
make (`HttpCall`), and the interfaces each protocol implements (`WireAdapter`, `StreamDecoder`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol

from providers.types import ChatRequest, ChatResponse, ProviderError, StreamEvent


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how to reach one platform. The key never appears in repr/logs."""

    platform: str
    protocol: str
    base_url: str  # e.g. https://api.openai.com/v1, https://api.anthropic.com
    api_key: str = field(repr=False, default="")
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class HttpCall:
    method: str
    url: str
    headers: dict[str, str] = field(repr=False)
    json: dict[str, Any]


class StreamDecoder(Protocol):
    def feed(self, chunk: bytes) -> list[StreamEvent]:
        """Decode more bytes; may raise a ProviderError for an error event mid-stream."""

    def close(self) -> list[StreamEvent]:
        """End of body. Returns the final events; raises StreamCutError if the stream ended
        without its terminal event."""


class WireAdapter(Protocol):
    def build_call(
        self, request: ChatRequest, model_id: str, endpoint: Endpoint, *, stream: bool = False
    ) -> HttpCall: ...

    def parse_response(
        self, body: Mapping[str, Any], *, platform: str, model: str
    ) -> ChatResponse: ...

    def parse_error(
        self,
        status: int,
        headers: Mapping[str, str],
        body: bytes,
        *,
        platform: str,
        model: str,
    ) -> ProviderError: ...

    def stream_decoder(self, *, platform: str, model: str) -> StreamDecoder: ...
