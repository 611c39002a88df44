"""Configuration as data: one YAML file (the repo's `switchboard.yaml` by default,
`SWITCHBOARD_CONFIG=path` to override), validated into typed objects."""
from __future__ import annotations

import os
from typing import Literal

import yaml
from pydantic import Field, field_validator, model_validator

from providers.catalog import Catalog
from providers.settings import (
    ModelEntry, PlatformSettings, ProtectionSection, ProviderEntry, Strict as _Strict, config_path,
)

USE_CASES = ("chat", "code", "reasoning", "analysis", "bulk")
PRIORITIES = ("speed", "cost", "quality", "balanced")


class ChainStep(_Strict):
    platform: str
    model: str


class EnsembleSection(_Strict):
    default_members: list[str] = ["groq", "openai", "anthropic"]
    synthesis_use_case: Literal["chat", "code", "reasoning", "analysis", "bulk"] = "reasoning"
    max_members: int = Field(default=5, ge=1, le=10)


class CacheSection(_Strict):
    enabled: bool = True
    ttl_s: float = Field(default=86400.0, gt=0)
    max_temperature: float = Field(default=0.3, ge=0)
    shared: bool = False  # one cache for all tenants (off: keyed by the API key's owner)
    semantic_use_cases: list[Literal["chat", "code", "reasoning", "analysis", "bulk"]] = []
    semantic_threshold: float = Field(default=0.97, gt=0, le=1)
    front_entries: int = Field(default=1024, gt=0)
    redis_namespace: str = "cache"


class ServerSection(_Strict):
    request_timeout_s: float = Field(default=120.0, gt=0)
    default_use_case: Literal["chat", "code", "reasoning", "analysis", "bulk"] = "chat"
    default_priority: Literal["speed", "cost", "quality", "balanced"] = "balanced"
    default_max_tokens: int = Field(default=1024, gt=0)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # larger request bodies: 413
    idempotency_ttl_s: float = Field(default=86_400.0, gt=0)  # how long an Idempotency-Key answers
    # the chat API's payload limits (413/400 naming the field); images: Anthropic's per-image cap
    max_image_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_images: int = Field(default=20, gt=0)
    max_tool_schema_bytes: int = Field(default=64 * 1024, gt=0)
    # A key without budgets: its pending rows are made durable in the replica's own journal
    # (<data_dir>/journal) and reach the ledger in batches, not one awaited hop per request
    ledger_journal: bool = True
    # ingress replicas of the embedded app (`switchboard serve`); `serve deploy` takes its
    # deployment's num_replicas from the Serve config when that names one
    replicas: int = Field(default=1, ge=1, le=64)


class BudgetsSection(_Strict):
    """The global daily budget: at 90% quality chains route as their cost twins, above 100%
    models whose output price exceeds the threshold are refused (runtime/core/budget_routing.py)."""

    daily_usd: float | None = Field(default=None, ge=0)  # None: no global budget
    output_price_threshold_per_1m: float = Field(default=1.0, ge=0)
    alert_webhook_url: str | None = None  # budget alerts are POSTed here as JSON (optional)
    state_ttl_s: float = Field(default=5.0, gt=0)  # how long a replica trusts its budget state

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("alert_webhook_url must be an http(s) URL")
        return url


class Config(_Strict):
    models: list[ModelEntry]
    chains: dict[str, list[ChainStep]]
    routing: dict[str, dict[str, str | list[str]]]
    providers: dict[str, ProviderEntry]
    server: ServerSection = ServerSection()
    ensemble: EnsembleSection = EnsembleSection()
    cache: CacheSection = CacheSection()
    budgets: BudgetsSection = BudgetsSection()
    protection: ProtectionSection = ProtectionSection()

    @field_validator("chains")
    @classmethod
    def _chains_not_empty(cls, chains: dict[str, list[ChainStep]]):
        for name, steps in chains.items():
            if not steps:
                raise ValueError(f"chain {name!r} is empty")
        return chains

    @model_validator(mode="after")
    def _cross_references(self) -> "Config":
        catalog = self.catalog()
        for m in self.models:
            if m.platform not in self.providers:
                raise ValueError(f"model {m.id!r}: platform {m.platform!r} has no providers entry")
        for name, p in self.providers.items():
            if p.default_model is not None:
                catalog.resolve(p.default_model, name)
        for name, steps in self.chains.items():
            for step in steps:
                catalog.resolve(step.model, step.platform)  # raises UnknownModelError
        for use_case in USE_CASES:
            if use_case not in self.routing:
                raise ValueError(f"routing: use case {use_case!r} missing")
            for priority in PRIORITIES:
                target = self.routing[use_case].get(priority)
                if target is None:
                    raise ValueError(f"routing.{use_case}: priority {priority!r} missing")
                for chain in [target] if isinstance(target, str) else target:
                    if chain not in self.chains:
                        raise ValueError(f"routing.{use_case}.{priority}: no chain {chain!r}")
        return self

    def catalog(self) -> Catalog:
        return Catalog(m.spec() for m in self.models)

    @property
    def platforms(self) -> list[str]:
        return list(self.providers)

    def platform_settings(self, platform: str) -> PlatformSettings:
        """What one platform's ProviderActor is given (providers/ knows nothing of this file)."""
        return PlatformSettings(
            platform=platform,
            entry=self.providers[platform],
            models=tuple(m for m in self.catalog() if m.platform == platform),
            protection=self.protection,
            default_max_tokens=self.server.default_max_tokens,
        )


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate the configuration. `path` wins, then `SWITCHBOARD_CONFIG`, then the
    shipped default."""
    with config_path(path).open("r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return Config.model_validate(data)
