"""Blackboard values: an entry, what a writer supplies, the bounds, and the typed errors.

An `Entry` is immutable and JSON-serializable (the Redis store keeps it as one JSON value).
Ids are ULID-like: 12 hex digits of wall-clock milliseconds, 8 hex digits of a per-factory
sequence and 8 random hex digits, so two writes in the same millisecond never collide and ids
from one factory sort in creation order. The store, not the id, defines the read order.
"""
from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from providers.clock import Clock
from providers.types import SwitchboardError

SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")
DEFAULT_TTL_S = 3600.0
DEFAULT_MAX_ENTRIES = 1000
DEFAULT_MAX_INSIGHT_BYTES = 32 * 1024


class BlackboardError(SwitchboardError):
    """Base of the blackboard's own errors."""


class InvalidEntry(BlackboardError, ValueError):
    """The fields of a write (or a session id) do not validate."""


class BlackboardFull(BlackboardError):
    """The session already holds the maximum number of entries."""

    def __init__(self, session_id: str, max_entries: int) -> None:
        super().__init__(session_id, max_entries)
        self.session_id = session_id
        self.max_entries = max_entries

    def __str__(self) -> str:
        return f"blackboard session {self.session_id!r} is full ({self.max_entries} entries)"


class InsightTooLarge(BlackboardError):
    """An insight exceeds the maximum size (UTF-8 bytes)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(size, max_bytes)
        self.size = size
        self.max_bytes = max_bytes

    def __str__(self) -> str:
        return f"insight of {self.size} bytes exceeds the limit of {self.max_bytes} bytes"


class NewEntry(BaseModel):
    """What a writer supplies; the store adds `id`, `session_id` and `timestamp`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent_id: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=100)
    platform: str = Field(default="", max_length=100)
    model: str = Field(default="", max_length=200)
    insight: str
    confidence: float = Field(ge=0.0, le=1.0, allow_inf_nan=False)
    related_to: tuple[str, ...] = ()


class Entry(NewEntry):
    """One insight on the blackboard. `timestamp` is wall-clock seconds since the epoch."""

    id: str
    session_id: str
    timestamp: float

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> "Entry":
        return cls.model_validate_json(data)


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-session bounds and time to live (refreshed on every write)."""

    ttl_s: float = DEFAULT_TTL_S
    max_entries: int = DEFAULT_MAX_ENTRIES
    max_insight_bytes: int = DEFAULT_MAX_INSIGHT_BYTES

    def __post_init__(self) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0 or self.max_insight_bytes <= 0:
            raise ValueError("blackboard limits must be positive")


EntryFields = NewEntry | Mapping[str, Any]


def validate_session_id(session_id: str) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_PATTERN.match(session_id):
        raise InvalidEntry(
            f"invalid session id {session_id!r}: 1-128 characters of A-Z a-z 0-9 . _ : @ -"
        )
    return session_id


def validate_fields(fields: EntryFields, limits: Limits) -> NewEntry:
    """Validate a write's fields: typed `InvalidEntry` / `InsightTooLarge` on failure."""
    if isinstance(fields, NewEntry):
        new = fields
    else:
        try:
            new = NewEntry.model_validate(dict(fields))
        except ValidationError as exc:
            raise InvalidEntry(_describe(exc)) from None
    size = len(new.insight.encode("utf-8"))
    if size > limits.max_insight_bytes:
        raise InsightTooLarge(size, limits.max_insight_bytes)
    return new


def _describe(exc: ValidationError) -> str:
    parts = [f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors()]
    return "invalid blackboard entry: " + "; ".join(parts)


class IdFactory:
    """ULID-like ids: time (ms) + a monotonic sequence + randomness. Unique across factories."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._seq = 0

    def next_id(self) -> str:
        self._seq += 1
        ms = int(self._clock.time() * 1000)
        return f"{ms:012x}{self._seq & 0xFFFFFFFF:08x}{secrets.token_hex(4)}"


def make_entry(session_id: str, new: NewEntry, entry_id: str, timestamp: float) -> Entry:
    return Entry(**new.model_dump(), id=entry_id, session_id=session_id, timestamp=timestamp)


def matches(entry: Entry, agent: str | None, role: str | None, platform: str | None) -> bool:
    """True when the entry satisfies every filter that is given."""
    return (
        (agent is None or entry.agent_id == agent)
        and (role is None or entry.role == role)
        and (platform is None or entry.platform == platform)
    )
