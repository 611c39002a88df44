"""One behaviour suite for every blackboard store (memory and Redis, see conftest)."""
from __future__ import annotations

import asyncio

import pytest

from blackboard.models import BlackboardFull, InsightTooLarge, InvalidEntry, Limits, NewEntry


def fields(agent: str = "structure", **overrides) -> dict:
    base = {
        "agent_id": agent,
        "role": agent,
        "platform": "openai",
        "model": "gpt-4o",
        "insight": f"{agent} insight",
        "confidence": 0.9,
    }
    return {**base, **overrides}


async def test_write_returns_the_stored_entry(store, clock):
    entry = await store.write("s1", fields(related_to=["abc"]))
    assert entry.session_id == "s1"
    assert entry.agent_id == "structure" and entry.insight == "structure insight"
    assert entry.timestamp == clock.time()
    assert entry.related_to == ("abc",)
    assert await store.read_all("s1") == [entry]


async def test_accepts_a_new_entry_model(store):
    new = NewEntry(agent_id="a", insight="x", confidence=1.0)
    entry = await store.write("s1", new)
    assert (entry.role, entry.platform, entry.model) == ("", "", "")


async def test_entries_are_kept_in_write_order(store):
    written = [await store.write("s1", fields(f"agent{i}")) for i in range(12)]
    assert [e.id for e in await store.read_all("s1")] == [e.id for e in written]


async def test_same_millisecond_concurrent_writers_get_unique_ids_and_keep_their_order(
    store, clock
):
    async def writer(name: str) -> list[str]:
        return [(await store.write("s1", fields(name, insight=f"{name}-{i}"))).id for i in range(5)]

    per_writer = await asyncio.gather(*(writer(f"w{n}") for n in range(6)))
    entries = await store.read_all("s1")
    ids = [e.id for e in entries]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert {e.timestamp for e in entries} == {clock.time()}  # the clock never moved
    for name, own_ids in zip((f"w{n}" for n in range(6)), per_writer):
        assert [e.id for e in entries if e.agent_id == name] == own_ids
        assert [e.insight for e in entries if e.agent_id == name] == [f"{name}-{i}" for i in range(5)]


async def test_two_store_instances_never_collide(make_store):
    first, second = make_store(), make_store(Limits(max_entries=999))
    a = await first.write("s1", fields("a"))
    b = await second.write("s1", fields("b"))
    assert a.id != b.id


async def test_read_filters_by_agent_role_and_platform(store):
    await store.write("s1", fields("structure", platform="openai"))
    await store.write("s1", fields("security", platform="anthropic"))
    await store.write("s1", fields("performance", platform="openai", role="perf"))
    assert [e.agent_id for e in await store.read("s1", platform="openai")] == [
        "structure",
        "performance",
    ]
    assert [e.agent_id for e in await store.read("s1", role="security")] == ["security"]
    assert [e.agent_id for e in await store.read("s1", agent="performance", role="perf")] == [
        "performance"
    ]
    assert await store.read("s1", agent="performance", platform="anthropic") == []


async def test_sessions_are_isolated(store):
    await store.write("s1", fields("a"))
    await store.write("s2", fields("b"))
    assert [e.agent_id for e in await store.read_all("s1")] == ["a"]
    assert [e.agent_id for e in await store.read_all("s2")] == ["b"]
    assert set(await store.sessions()) >= {"s1", "s2"}


async def test_clear_removes_a_session_and_reports_the_count(store):
    await store.write("s1", fields("a"))
    await store.write("s1", fields("b"))
    await store.write("s2", fields("c"))
    assert await store.clear("s1") == 2
    assert await store.read_all("s1") == []
    assert "s1" not in await store.sessions()
    assert len(await store.read_all("s2")) == 1
    assert await store.clear("s1") == 0


async def test_a_cleared_session_can_be_written_again(store):
    await store.write("s1", fields("a"))
    await store.clear("s1")
    entry = await store.write("s1", fields("b"))
    assert await store.read_all("s1") == [entry]


async def test_unknown_session_reads_empty(store):
    assert await store.read_all("nobody") == []
    assert await store.read("nobody", agent="a") == []


async def test_max_entries_per_session(make_store):
    store = make_store(Limits(max_entries=3))
    for i in range(3):
        await store.write("s1", fields(f"a{i}"))
    with pytest.raises(BlackboardFull) as info:
        await store.write("s1", fields("overflow"))
    assert info.value.max_entries == 3 and "s1" in str(info.value)
    assert len(await store.read_all("s1")) == 3
    await store.write("s2", fields("other session"))  # the bound is per session


async def test_insight_size_is_bounded_in_utf8_bytes(make_store):
    store = make_store(Limits(max_insight_bytes=8))
    await store.write("s1", fields(insight="12345678"))
    with pytest.raises(InsightTooLarge) as info:
        await store.write("s1", fields(insight="éééé" + "x"))  # 9 bytes, 5 characters
    assert (info.value.size, info.value.max_bytes) == (9, 8)
    assert len(await store.read_all("s1")) == 1


@pytest.mark.parametrize("confidence", [-0.01, 1.01, float("nan")])
async def test_confidence_outside_0_1_is_rejected(store, confidence):
    with pytest.raises(InvalidEntry, match="confidence"):
        await store.write("s1", fields(confidence=confidence))
    assert await store.read_all("s1") == []


@pytest.mark.parametrize(
    "bad", [{"agent_id": ""}, {"insight": None}, {"unexpected": 1}, {"related_to": "x"}]
)
async def test_invalid_fields_are_rejected(store, bad):
    with pytest.raises(InvalidEntry):
        await store.write("s1", fields(**bad))


@pytest.mark.parametrize("session_id", ["", "a b", "x" * 129, "s{1}", "s*"])
async def test_invalid_session_ids_are_rejected(store, session_id):
    with pytest.raises(InvalidEntry, match="session id"):
        await store.write(session_id, fields())
    with pytest.raises(InvalidEntry):
        await store.read_all(session_id)
