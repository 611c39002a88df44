"""What the providers package is configured with, as data: the `models:` entries of the catalog,
each platform's `providers:` entry and the `protection:` section (schemas of the YAML file that
runtime/config.py validates as a whole), and `PlatformSettings`, the slice one ProviderActor is
given. Nothing here knows the rest of the configuration."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from providers.catalog import Capability, Catalog, ModelSpec

#: the shipped configuration file (the repo's `switchboard.yaml`)
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "switchboard.yaml"
CONFIG_ENV = "SWITCHBOARD_CONFIG"

Protocol = Literal["openai", "anthropic", "gemini"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelEntry(Strict):
    platform: str
    id: str
    aliases: list[str] = []
    input_per_1m: float = Field(ge=0)
    output_per_1m: float = Field(ge=0)
    context_window: int = Field(gt=0)
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    rpd: int | None = Field(default=None, gt=0)
    max_in_flight: int | None = Field(default=None, gt=0)
    tokens_per_s: float = Field(default=100.0, gt=0)
    ttft_ms: float = Field(default=300.0, ge=0)
    status: Literal["active", "deprecated", "retired"] = "active"
    successor: str | None = None
    source: str = ""
    retrieved: str = ""
    capabilities: list[Capability] = []

    def spec(self) -> ModelSpec:
        return ModelSpec(**{**self.model_dump(), "aliases": tuple(self.aliases),
                            "capabilities": frozenset(self.capabilities)})


class ProviderEntry(Strict):
    protocol: Protocol
    base_url: str
    api_key_env: str
    base_url_env: str
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    default_model: str | None = None  # what an ensemble member named only by platform uses


class BreakerSection(Strict):
    window_s: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    consecutive_failures: int = Field(default=5, ge=1)
    base_cooldown_s: float = Field(default=5.0, gt=0)
    max_cooldown_s: float = Field(default=300.0, gt=0)
    probes: int = Field(default=1, ge=1)
    probe_timeout_s: float = Field(default=30.0, gt=0)


class RetrySection(Strict):
    max_attempts: int = Field(default=3, ge=1, le=10)
    base_s: float = Field(default=0.25, ge=0)
    cap_s: float = Field(default=8.0, ge=0)
    budget_ratio: float = Field(default=0.2, ge=0, le=1)
    budget_min_retries: int = Field(default=3, ge=0)
    budget_window_s: float = Field(default=60.0, gt=0)


class ProtectionSection(Strict):
    """Per-platform protection owned by each ProviderActor (see providers/guard.py)."""

    window_scale: float = Field(default=1.0, gt=0)  # < 1 shrinks every limit window (tests)
    guard_s: float = Field(default=0.1, ge=0)
    settle_on_restart: bool = True
    # Admission by lease: replicas hold slices of the limits and call the upstream themselves
    # (false: every call goes through the platform's actor). A slice lasts lease_term_s, at
    # most 5% of the window.
    leases: bool = True
    lease_term_s: float = Field(default=1.0, gt=0)
    breaker: BreakerSection = BreakerSection()
    retry: RetrySection = RetrySection()


@dataclass(frozen=True, slots=True)
class PlatformSettings:
    """One platform's share of the configuration: its endpoint entry, its models, the protection
    settings and the max_tokens assumed when a request names none."""

    platform: str
    entry: ProviderEntry
    models: tuple[ModelSpec, ...]
    protection: ProtectionSection = ProtectionSection()
    default_max_tokens: int = 1024


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    """`path` wins, then `SWITCHBOARD_CONFIG`, then the shipped default."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """The model catalog of a configuration file (its `models:` section, validated)."""
    with config_path(path).open("r", encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    return Catalog(ModelEntry.model_validate(m).spec() for m in data.get("models") or ())
