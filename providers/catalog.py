"""The model catalog: prices, limits, lifecycle and aliases, loaded from configuration data."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal

Lifecycle = Literal["active", "deprecated", "retired"]
#: what a model can serve beyond text (catalog data, per model):
#: tools, parallel_tools (the parallel-calls switch is honoured both ways), vision (images),
#: image_urls (images by URL; without it only inline data), json_schema, reasoning, seed
Capability = Literal["tools", "parallel_tools", "vision", "image_urls", "json_schema", "reasoning", "seed",
                     "logprobs"]


@dataclass(frozen=True, slots=True)
class ModelSpec:
    platform: str
    id: str
    input_per_1m: float
    output_per_1m: float
    context_window: int
    rpm: int | None = None
    tpm: int | None = None
    rpd: int | None = None
    max_in_flight: int | None = None
    tokens_per_s: float = 100.0
    ttft_ms: float = 300.0
    status: Lifecycle = "active"
    successor: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = ""
    retrieved: str = ""
    capabilities: frozenset[str] = frozenset()

    @property
    def key(self) -> tuple[str, str]:
        return (self.platform, self.id)

    def cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """Exact cost of a call at this model's list prices."""
        return (input_tokens * self.input_per_1m + output_tokens * self.output_per_1m) / 1_000_000

    def expected_latency_ms(self, output_tokens: int) -> float:
        return self.ttft_ms + 1000.0 * output_tokens / max(self.tokens_per_s, 1e-9)


class UnknownModelError(LookupError):
    def __init__(self, name: str, platform: str | None = None) -> None:
        where = f" on platform {platform!r}" if platform else ""
        super().__init__(f"unknown model {name!r}{where}")
        self.name = name
        self.platform = platform


class Catalog:
    """All models, indexed by (platform, id) and by every alias. Retired models resolve to
    their live successor."""

    def __init__(self, models: Iterable[ModelSpec]) -> None:
        self._models: dict[tuple[str, str], ModelSpec] = {}
        for m in models:
            if m.key in self._models:
                raise ValueError(f"duplicate model {m.platform}/{m.id}")
            self._models[m.key] = m
        self._names: dict[tuple[str, str], tuple[str, str]] = {}
        self._global: dict[str, list[tuple[str, str]]] = {}
        for m in self._models.values():
            for name in (m.id, *m.aliases):
                if (m.platform, name) in self._names and self._names[(m.platform, name)] != m.key:
                    raise ValueError(f"model name {name!r} is ambiguous on {m.platform}")
                self._names[(m.platform, name)] = m.key
                self._global.setdefault(name, [])
                if m.key not in self._global[name]:
                    self._global[name].append(m.key)
        for m in self._models.values():
            if m.successor is not None:
                self.resolve(m.successor, m.platform)  # validates the successor exists

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def get(self, platform: str, model_id: str) -> ModelSpec:
        try:
            return self._models[(platform, model_id)]
        except KeyError:
            raise UnknownModelError(model_id, platform) from None

    def resolve(self, name: str, platform: str | None = None) -> ModelSpec:
        """A model by id or alias (optionally scoped to a platform), following retirements to
        the live successor. `platform/name` works too (e.g. `groq/llama-3.3-70b-versatile`)."""
        if platform is None and name not in self._global and "/" in name:
            head, rest = name.split("/", 1)
            if any(p == head for p, _ in self._models):
                platform, name = head, rest
        if platform is not None:
            key = self._names.get((platform, name))
            if key is None:
                raise UnknownModelError(name, platform)
        else:
            keys = self._global.get(name)
            if not keys:
                raise UnknownModelError(name)
            key = keys[0]
        spec = self._models[key]
        seen = {spec.key}
        while spec.status == "retired" and spec.successor:
            spec = self.resolve_exact(spec.platform, spec.successor)
            if spec.key in seen:
                raise ValueError(f"successor cycle at {spec.platform}/{spec.id}")
            seen.add(spec.key)
        return spec

    def resolve_exact(self, platform: str, name: str) -> ModelSpec:
        key = self._names.get((platform, name))
        if key is None:
            raise UnknownModelError(name, platform)
        return self._models[key]

    def live(self) -> list[ModelSpec]:
        return [m for m in self._models.values() if m.status != "retired"]
