"""Fault injection per (platform, model): errors, hangs, slow starts, cut or malformed streams."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, Field

WILDCARD = "*"


class FaultRule(BaseModel):
    """One fault. It *fires* for a matching request with probability `error_rate` (seeded RNG),
    at most `count` times when `count` is set; when it fires, all its effects apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    platform: str = WILDCARD
    model: str = WILDCARD  # catalog id or alias; "*" = every model of the platform
    error_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    status: int | None = Field(default=None, ge=400, le=599)
    error_code: str | None = None  # variant of `status`, e.g. "insufficient_quota" for 429
    count: int | None = Field(default=None, ge=0)
    hang: bool = False
    slow_first_byte_ms: float = Field(default=0.0, ge=0.0)
    cut_after_chunks: int | None = Field(default=None, ge=0)
    malformed_chunk: bool = False
    latency_multiplier: float = Field(default=1.0, ge=0.0)
    retry_after_s: float | None = Field(default=None, ge=0.0)

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.model)


class FaultTable:
    """The active rules, at most one per (platform, model). Lookup prefers the exact model,
    then the platform wildcard, then the global wildcard."""

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int = 0) -> None:
        self._seed = seed
        self._rng = random.Random(seed)
        self._rules: dict[tuple[str, str], FaultRule] = {}
        self._remaining: dict[tuple[str, str], int | None] = {}
        for rule in rules:
            self.set(rule)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def set(self, rule: FaultRule) -> None:
        self._rules[rule.key] = rule
        self._remaining[rule.key] = rule.count

    def remove(self, platform: str, model: str) -> bool:
        self._remaining.pop((platform, model), None)
        return self._rules.pop((platform, model), None) is not None

    def clear(self) -> None:
        self._rules.clear()
        self._remaining.clear()
        self._rng = random.Random(self._seed)

    def rules(self) -> list[dict[str, Any]]:
        return [
            {**rule.model_dump(), "remaining": self._remaining[key]}
            for key, rule in self._rules.items()
        ]

    def draw(self, platform: str, model_ids: Iterable[str]) -> FaultRule | None:
        """The rule that fires for this request, if any (consumes one of its `count`)."""
        if not self._rules:
            return None
        for key in (*((platform, m) for m in model_ids), (platform, WILDCARD), (WILDCARD, WILDCARD)):
            rule = self._rules.get(key)
            if rule is not None:
                return self._fire(key, rule)
        return None

    def _fire(self, key: tuple[str, str], rule: FaultRule) -> FaultRule | None:
        left = self._remaining[key]
        if left is not None and left <= 0:
            return None
        if rule.error_rate < 1.0 and self._rng.random() >= rule.error_rate:
            return None
        if left is not None:
            self._remaining[key] = left - 1
        return rule


def parse_rules(data: Any) -> list[FaultRule]:
    """Rules from decoded JSON/YAML: one rule, a list of rules, or `{"faults": [...]}`."""
    if isinstance(data, dict) and "faults" in data:
        data = data["faults"]
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise ValueError("faults must be a rule object or a list of rule objects")
    return [FaultRule.model_validate(item) for item in data]


def load_rules(source: str) -> list[FaultRule]:
    """Rules from an inline JSON string or a JSON/YAML file path."""
    text = source.strip()
    if text.startswith(("{", "[")):
        return parse_rules(json.loads(text))
    return parse_rules(yaml.safe_load(Path(source).read_text(encoding="utf-8")))
