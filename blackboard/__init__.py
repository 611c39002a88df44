"""Shared memory for multi-agent sessions. Pure parts here; the Ray actor is `blackboard.board`."""
from blackboard.models import (
    BlackboardError,
    BlackboardFull,
    Entry,
    InsightTooLarge,
    InvalidEntry,
    Limits,
    NewEntry,
)
from blackboard.store import BlackboardStore, MemoryStore, RedisStore, make_store

__all__ = [
    "BlackboardError",
    "BlackboardFull",
    "BlackboardStore",
    "Entry",
    "InsightTooLarge",
    "InvalidEntry",
    "Limits",
    "MemoryStore",
    "NewEntry",
    "RedisStore",
    "make_store",
]
