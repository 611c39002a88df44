"""The agent registry: agents as data (`agents/registry.yaml`), validated on load."""
from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parent / "registry.yaml"
AGENT_ID_PATTERN = r"^[a-z0-9]+(?:-[a-z0-9]+)*$"


class RegistryError(ValueError):
    """The registry file does not validate."""


class Agent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=AGENT_ID_PATTERN, max_length=80)
    name: str = Field(min_length=1)
    area: str = Field(pattern=AGENT_ID_PATTERN)
    description: str = Field(min_length=1)
    keywords: tuple[str, ...] = Field(min_length=1)
    capabilities: tuple[str, ...] = ()

    @field_validator("keywords", "capabilities")
    @classmethod
    def _clean_terms(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(str(v).strip().lower() for v in values)
        if any(not v for v in cleaned):
            raise ValueError("keywords and capabilities must be non-empty strings")
        return cleaned


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1
    fallback: str
    escalation: str
    agents: tuple[Agent, ...] = Field(min_length=1)


class Registry:
    """An immutable, validated set of agents plus the fallback and human-escalation ids."""

    def __init__(self, agents: tuple[Agent, ...], fallback: str, escalation: str) -> None:
        self._agents = agents
        self._by_id = {a.id: a for a in agents}
        self.fallback = self._by_id[fallback]
        self.escalation = self._by_id[escalation]

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents)

    def __len__(self) -> int:
        return len(self._agents)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._by_id

    def get(self, agent_id: str) -> Agent:
        """The agent with this id (KeyError when unknown)."""
        return self._by_id[agent_id]

    def in_area(self, area: str) -> list[Agent]:
        return [a for a in self._agents if a.area == area]

    def with_capability(self, capability: str) -> list[Agent]:
        return [a for a in self._agents if capability in a.capabilities]

    @property
    def areas(self) -> list[str]:
        return sorted({a.area for a in self._agents})


def parse_registry(data: object) -> Registry:
    """Validate already-loaded registry data (unique ids, non-empty keywords, known targets)."""
    try:
        parsed = _RegistryFile.model_validate(data)
    except ValidationError as exc:
        raise RegistryError(f"invalid agent registry: {exc}") from None
    seen: set[str] = set()
    duplicates = sorted({a.id for a in parsed.agents if a.id in seen or seen.add(a.id)})
    if duplicates:
        raise RegistryError(f"duplicate agent ids: {', '.join(duplicates)}")
    for role in ("fallback", "escalation"):
        target = getattr(parsed, role)
        if target not in seen:
            raise RegistryError(f"{role} agent {target!r} is not in the registry")
    return Registry(parsed.agents, parsed.fallback, parsed.escalation)


def load_registry(path: str | os.PathLike[str] | None = None) -> Registry:
    """Load a registry file; `path` wins, then `SWITCHBOARD_AGENT_REGISTRY`, then the default."""
    chosen = Path(path or os.environ.get("SWITCHBOARD_AGENT_REGISTRY") or DEFAULT_REGISTRY_PATH)
    try:
        data = yaml.safe_load(chosen.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RegistryError(f"{chosen}: not valid YAML: {exc}") from None
    return parse_registry(data)


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The shipped registry, loaded once per process."""
    return load_registry(DEFAULT_REGISTRY_PATH)

