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
