"""The ledger's rows as they cross the wire: a pending row before a provider call, a final row
after it. Validated on construction; `params()` is the SQL parameter dict (nano-dollars)."""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Literal, TypeVar

from runtime.finops.budget import to_nusd

Status = Literal["pending", "ok", "error", "unknown", "cached"]
FINAL_STATUSES = ("ok", "error", "unknown", "cached")

R = TypeVar("R")


def compact_pickle(cls: type[R]) -> type[R]:
    """Pickle a frozen slots dataclass as the tuple of its values: the state functions
    dataclasses generates walk `fields()` per object, and rows cross a Ray hop in hundreds
    (unpickling them was most of the ledger actor's CPU per row)."""
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]

    def __getstate__(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in names)

    def __setstate__(self: Any, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            object.__setattr__(self, name, value)

    cls.__getstate__ = __getstate__  # type: ignore[attr-defined]
    cls.__setstate__ = __setstate__  # type: ignore[attr-defined]
    return cls


@dataclass(frozen=True, slots=True, kw_only=True)
class _Row:
    request_id: str
    user_id: str
    created_at: float  # wall seconds, from the caller's (injected) clock
    key_id: str | None = None
    agent_id: str = "orchestrator"
    conversation_id: str | None = None
    endpoint: str = ""
    use_case: str | None = None
    chain: str | None = None
    platform: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    reserved_usd: float = 0.0
    allowance_id: str | None = None  # admitted by a replica under this allowance (allowance_schema.py)

    def __post_init__(self) -> None:
        if not self.request_id or not self.user_id:
            raise ValueError("a ledger row needs a request_id and a user_id")
        if not math.isfinite(self.created_at):
            raise ValueError("created_at must be a finite wall time")
        if self.input_tokens < 0 or self.output_tokens < 0:
            raise ValueError("token counts must be >= 0")
        to_nusd(self.reserved_usd)  # validates: finite, >= 0

    def _params(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id, "user_id": self.user_id, "key_id": self.key_id,
            "agent_id": self.agent_id, "conversation_id": self.conversation_id,
            "endpoint": self.endpoint, "use_case": self.use_case, "chain": self.chain,
            "platform": self.platform, "model": self.model, "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "reserved_cost": to_nusd(self.reserved_usd), "created_at": self.created_at,
            "allowance_id": self.allowance_id,
        }


@compact_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class PendingRow(_Row):
    """Written BEFORE the provider call, holding the request's maximum cost as a reservation.
    `input_tokens`/`output_tokens` are the estimates the reservation was priced on."""

    def params(self) -> dict[str, Any]:
        return {
            **self._params(), "estimated_cost": 0, "saved_cost": 0, "status": "pending",
            "cache_hit": 0, "fallback_used": 0, "attempts": 0, "latency_ms": 0.0,
        }


@compact_pickle
@dataclass(frozen=True, slots=True, kw_only=True)
class FinalRow(_Row):
    """The outcome of a call: real usage and cost."""

    cost_usd: float = 0.0
    status: Status = "ok"
    cache_hit: bool = False
    saved_usd: float = 0.0
    fallback_used: bool = False
    attempts: int = 1
    latency_ms: float = 0.0
    error_kind: str | None = None

    def __post_init__(self) -> None:
        _Row.__post_init__(self)
        if self.status not in FINAL_STATUSES:
            raise ValueError(f"a final row's status is one of {FINAL_STATUSES}, got {self.status!r}")
        if self.attempts < 0 or not math.isfinite(self.latency_ms) or self.latency_ms < 0:
            raise ValueError("attempts and latency_ms must be >= 0")
        to_nusd(self.cost_usd)  # validates
        to_nusd(self.saved_usd)

    def params(self) -> dict[str, Any]:
        return {
            **self._params(), "estimated_cost": to_nusd(self.cost_usd),
            "saved_cost": to_nusd(self.saved_usd), "status": self.status,
            "cache_hit": int(self.cache_hit), "fallback_used": int(self.fallback_used),
            "attempts": self.attempts, "latency_ms": self.latency_ms, "error_kind": self.error_kind,
        }

