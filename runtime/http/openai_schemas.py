"""The OpenAI chat-completions request, as the front door accepts it (pydantic; also its
OpenAPI schema). Shapes are checked here; what the gateway can honour is checked in
runtime/http/openai_request.py, which maps the body to the normalized request."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from runtime.http.schemas import FORBIDDEN_FIELDS, MAX_DEADLINE_MS, MAX_MESSAGES, MAX_TOKENS_CAP, CacheMode

TOOL_NAME = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 128
MAX_STOP_SEQUENCES = 4  # OpenAI's limit


class _Open(BaseModel):
    """Parts of the request where OpenAI's clients send fields of their own (ignored when
    empty, refused otherwise: see openai_request.py)."""

    model_config = ConfigDict(extra="allow")


class ContentPartIn(_Open):
    type: str = Field(description="text | image_url (other part types are refused)")
    text: str | None = None
    image_url: dict[str, Any] | None = Field(default=None, description="{url: https://… | data:image/…;base64,…, detail?}")


class FunctionCallIn(_Open):
    name: str = Field(pattern=TOOL_NAME)
    arguments: str = Field(default="{}", description="the JSON text the model produced")


class ToolCallIn(_Open):
    id: str = Field(min_length=1, max_length=2048)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessageIn(_Open):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPartIn] | None = None
    name: str | None = Field(default=None, max_length=256)
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=2048)
    thinking_blocks: list[dict[str, Any]] | None = Field(
        default=None, description="Anthropic thinking blocks of an earlier answer, sent back unchanged")


class FunctionDefIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOOL_NAME)
    description: str | None = Field(default=None, max_length=16_384)
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["function"]
    function: FunctionDefIn


class NamedFunction(BaseModel):
    name: str = Field(pattern=TOOL_NAME)


class NamedToolChoiceIn(BaseModel):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=TOOL_NAME)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormatIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaIn | None = None


class StreamOptionsIn(_Open):
    include_usage: bool = False


class ChatCompletionBody(BaseModel):
    """OpenAI's chat-completions request. A parameter the gateway cannot honour is refused with
    400 naming it (never ignored); fields that would redirect upstream traffic are refused
    (FORBIDDEN_FIELDS)."""

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
    tools: list[ToolIn] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoiceIn | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    seed: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
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
