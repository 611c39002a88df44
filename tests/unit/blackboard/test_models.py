from __future__ import annotations

import pickle

import pytest

from blackboard.models import (
    BlackboardFull,
    Entry,
    IdFactory,
    InsightTooLarge,
    InvalidEntry,
    Limits,
    NewEntry,
    validate_fields,
)
from providers.clock import FakeClock


def test_ids_from_a_frozen_clock_are_unique_and_sorted():
    factory = IdFactory(FakeClock())
    ids = [factory.next_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)
    assert {len(i) for i in ids} == {28}


def test_ids_start_with_the_millisecond_timestamp():
    clock = FakeClock()
    entry_id = IdFactory(clock).next_id()
    assert int(entry_id[:12], 16) == int(clock.time() * 1000)


def test_entry_round_trips_through_json_and_pickle():
    entry = Entry(
        id="x", session_id="s", timestamp=1.5, agent_id="a", insight="i", confidence=0.5,
        related_to=("p",),
    )
    assert Entry.from_json(entry.to_json()) == entry
    assert pickle.loads(pickle.dumps(entry)) == entry


def test_entries_are_immutable():
    entry = NewEntry(agent_id="a", insight="i", confidence=0.5)
    with pytest.raises(Exception):
        entry.insight = "changed"  # type: ignore[misc]


def test_validation_error_names_the_field():
    with pytest.raises(InvalidEntry, match="confidence"):
        validate_fields({"agent_id": "a", "insight": "i", "confidence": 2}, Limits())


def test_a_prebuilt_new_entry_is_still_size_checked():
    new = NewEntry(agent_id="a", insight="x" * 11, confidence=0.5)
    with pytest.raises(InsightTooLarge):
        validate_fields(new, Limits(max_insight_bytes=10))


def test_errors_survive_pickling_with_their_details():
    full = pickle.loads(pickle.dumps(BlackboardFull("s1", 3)))
    big = pickle.loads(pickle.dumps(InsightTooLarge(9, 8)))
    assert (full.session_id, full.max_entries) == ("s1", 3)
    assert (big.size, big.max_bytes) == (9, 8)


@pytest.mark.parametrize("kwargs", [{"ttl_s": 0}, {"max_entries": 0}, {"max_insight_bytes": -1}])
def test_limits_must_be_positive(kwargs):
    with pytest.raises(ValueError):
        Limits(**kwargs)
