"""HTTP request and response models (pydantic), shared by the API and its OpenAPI schema."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

UseCase = Literal["chat", "code", "reasoning", "analysis", "bulk"]
CacheMode = Literal["exact", "semantic", "off"]
Priority = Literal["speed", "cost", "quality", "balanced"]

MAX_QUERY_CHARS = 400_000
MAX_MESSAGES = 256
MAX_TOKENS_CAP = 32_768
MAX_DEADLINE_MS = 600_000

#: fields that would let a client redirect upstream traffic or smuggle credentials/headers
FORBIDDEN_FIELDS = (
    "api_base",
    "base_url",
    "api_key",
    "api_version",
    "headers",
    "extra_headers",
    "custom_llm_provider",
    "organization",
    "azure_endpoint",
)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RouteBody(_Body):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, examples=["Explain CRDTs briefly."])
    use_case: UseCase | None = None
    priority: Priority | None = None
    system_prompt: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_cost_usd: float | None = Field(default=None, ge=0, description="only models whose estimated cost fits")
    deadline_ms: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_MS)
    cache: CacheMode | None = Field(default=None, description="exact | semantic (opt in) | off (opt out)")


class UsageOut(BaseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int


class RouteResult(BaseModel):
    request_id: str
    text: str
    platform: str
    model: str
    chain: str
    usage: UsageOut
    cost_usd: float
    latency_ms: float
    attempts: int
    fallback_used: bool
    finish_reason: str
    cache: str


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ResponseFormatIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["text", "json_object"]


class StreamOptionsIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """OpenAI's chat-completions request. Unknown OpenAI parameters are ignored; fields that
    would redirect upstream traffic are refused (see FORBIDDEN_FIELDS)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(min_length=1, max_length=200, examples=["switchboard/chat-balanced"])
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    stop: str | list[str] | None = None
    response_format: ResponseFormatIn | None = None
    stream: bool = False
    stream_options: StreamOptionsIn | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    user: str | None = Field(default=None, max_length=256)
    # Switchboard extensions (OpenAI SDKs send them with extra_body=...)
    max_cost_usd: float | None = Field(default=None, ge=0)
    deadline_ms: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_MS)
    cache: CacheMode | None = None

    def forbidden_field(self) -> str | None:
        return next((n for n in FORBIDDEN_FIELDS if n in (self.model_extra or {})), None)

    @property
    def output_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok", "starting"]
    simulated_platforms: list[str]
    simulator_url: str | None
    warning: str | None = None
    actors: dict[str, Any]


class EnsembleBody(_Body):
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    models: list[str] | None = Field(
        default=None, min_length=1, max_length=10,
        description="platforms (their default model) or catalog models; default from config",
        examples=[["groq", "openai", "claude-3-5-sonnet"]],
    )
    system_prompt: str | None = Field(default=None, max_length=MAX_QUERY_CHARS)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_CAP)
    deadline_ms: int | None = Field(default=None, ge=1, le=MAX_DEADLINE_MS)


class EnsembleMemberOut(BaseModel):
    platform: str
    model: str
    ok: bool
    text: str | None
    error: str | None
    cost_usd: float
    latency_ms: float


class EnsembleSynthesisOut(BaseModel):
    platform: str
    model: str
    chain: str
    cost_usd: float
    latency_ms: float
    fallback_used: bool


class EnsembleOut(BaseModel):
    answer: str
    members: list[EnsembleMemberOut]
    synthesis: EnsembleSynthesisOut
    total_cost_usd: float
    latency_ms: float
