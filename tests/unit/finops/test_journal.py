"""The replica's pending-row journal (runtime/finops/journal.py) and the ledger client's use of
it: a row is on disk before `append` returns, rows queued during a sync share the next one,
segments go once the ledger has their rows, a dead writer's segments are adopted (a live one's
never), and a row the ledger did not take is sent again."""
from __future__ import annotations

import asyncio
import os
import threading

import pytest

from runtime.finops.budget import Admitted, Budget, Scope
from runtime.finops.journal import Journal, adopt_orphans, decode, encode, orphan_segments
from runtime.finops.ledger_client import RayLedgerClient
from runtime.finops.ledger_store import PendingRow


def row(i: int = 0, **extra) -> PendingRow:
    return PendingRow(request_id=f"req-{i}", user_id="u1", created_at=1_767_225_600.0 + i, platform="openai",
                      model="gpt-4o-mini", input_tokens=10, output_tokens=50, reserved_usd=0.0001, **extra)


class RecordingSync:
    """fdatasync that records what the file held when it was called; can hold a sync open."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.entered.set()
        self.release.wait(10)
        os.fdatasync(fd)


async def test_a_row_is_in_the_file_and_synced_before_append_returns(tmp_path):
    sync = RecordingSync()
    journal = Journal(tmp_path, "replica-a", sync=sync)
    await journal.append(row(1, key_id="k1", use_case="code"))
    assert sync.calls == 1
    [segment] = orphan_segments(tmp_path)
    assert decode(segment.read_bytes().splitlines(keepends=True)) == [row(1, key_id="k1", use_case="code")]
    assert journal.unacked == 1
    journal.close()


async def test_rows_queued_during_a_sync_share_the_next_commit(tmp_path):
    sync = RecordingSync()
    journal = Journal(tmp_path, "replica-a", sync=sync)
    sync.release.clear()
    first = asyncio.ensure_future(journal.append(row(0)))
    await asyncio.to_thread(sync.entered.wait, 10)  # the first commit is in its sync
    rest = [asyncio.ensure_future(journal.append(row(i))) for i in range(1, 50)]
    await asyncio.sleep(0)
    assert not first.done()  # not before its sync
    sync.release.set()
    await asyncio.gather(first, *rest)
    assert journal.commits == 2 and journal.rows == 50
    [segment] = orphan_segments(tmp_path)
    assert {r.request_id for r in decode(segment.read_bytes().splitlines(keepends=True))} == {f"req-{i}" for i in range(50)}
    journal.close()


async def test_segments_are_deleted_once_the_ledger_has_every_row(tmp_path):
    journal = Journal(tmp_path, "replica-a", segment_bytes=len(encode(row(0))) * 2)
    tickets = [await journal.append(row(i)) for i in range(7)]
    assert len(orphan_segments(tmp_path)) == 4  # two rows a segment
    for ticket in tickets[:4]:
        journal.ack(ticket)
    assert len(orphan_segments(tmp_path)) == 2  # the first two segments are gone
    for ticket in tickets[4:]:
        journal.ack(ticket)
    assert len(orphan_segments(tmp_path)) == 1  # the open one stays until close
    journal.close()
    assert orphan_segments(tmp_path) == []


async def test_a_live_writers_segments_are_never_adopted_a_dead_ones_are(tmp_path):
    sent: list[PendingRow] = []

    async def send(rows):
        sent.extend(rows)

    journal = Journal(tmp_path, "replica-a")
    for i in range(3):
        await journal.append(row(i))
    assert await adopt_orphans(tmp_path, send) == 0 and sent == []  # alive: its lock is held
    journal.close()  # as a killed process: the lock goes, the unacknowledged rows stay
    assert len(orphan_segments(tmp_path)) == 1
    assert await adopt_orphans(tmp_path, send) == 3
    assert [r.request_id for r in sent] == ["req-0", "req-1", "req-2"]
    assert orphan_segments(tmp_path) == []


async def test_an_adoption_that_cannot_reach_the_ledger_keeps_the_segment(tmp_path):
    async def down(rows):
        raise ConnectionError("ledger away")

    journal = Journal(tmp_path, "replica-a")
    await journal.append(row(1))
    journal.close()
    assert await adopt_orphans(tmp_path, down) == 0
    assert len(orphan_segments(tmp_path)) == 1


def test_a_torn_last_line_is_skipped():
    whole = encode(row(1))
    assert decode([whole, encode(row(2))[:-5]]) == [row(1)]
    assert decode([b"not json\n", whole]) == [row(1)]


# -- the ledger client over a journal ------------------------------------------------------------


class Method:
    def __init__(self, fn) -> None:
        self.fn = fn

    def remote(self, *args):
        return self.fn(*args)


class FakeLedger:
    """The ledger actor's methods the client calls; `up` says whether it answers."""

    def __init__(self) -> None:
        self.up = True
        self.opened: list[str] = []
        self.admitted: list[str] = []
        self.finals: list[str] = []
        self.open_many = Method(self._open_many)
        self.admit_many = Method(self._admit_many)
        self.write_many = Method(self._write_many)
        self.write_rows = Method(self._write_rows)

    async def _open_many(self, rows):
        if not self.up:
            raise asyncio.TimeoutError()
        self.opened.extend(r.request_id for r in rows)
        return [None] * len(rows)

    async def _admit_many(self, items):
        self.admitted.extend(r.request_id for r, _ in items)
        return [Admitted(r.request_id) for r, _ in items]

    async def _write_many(self, rows):
        if not self.up:
            raise asyncio.TimeoutError()
        self.finals.extend(r.request_id for r in rows)
        return [None] * len(rows)

    async def _write_rows(self, pending, finals, returns=()):
        opened = await self._open_many(pending)
        return opened, await self._write_many(finals)


async def test_a_key_without_budgets_is_journaled_and_sent_on_without_an_awaited_hop(tmp_path):
    ledger = FakeLedger()
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-a"), timeout_s=1, attempts=1)
    result = await client.admit_and_open_pending(row(1), [])
    assert isinstance(result, Admitted) and ledger.admitted == []
    await client.flush()
    assert ledger.opened == ["req-1"] and client.journal.unacked == 0
    await client.close()
    assert orphan_segments(tmp_path) == []


async def test_a_key_with_budgets_is_still_admitted_by_the_ledger(tmp_path):
    ledger = FakeLedger()
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-a"), timeout_s=1, attempts=1)
    budget = Budget("user:u1:day", 1.0, "day", Scope("user", "u1"))
    assert isinstance(await client.admit_and_open_pending(row(2), [budget]), Admitted)
    assert ledger.admitted == ["req-2"] and client.journal.unacked == 0
    await client.close()


async def test_rows_the_ledger_did_not_take_stay_journaled_and_are_sent_again(tmp_path):
    ledger = FakeLedger()
    ledger.up = False
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-a"), timeout_s=1, attempts=1)
    await client.admit_and_open_pending(row(3), [])
    await client.flush()
    assert ledger.opened == [] and client.journal.unacked == 1  # durable here meanwhile
    ledger.up = True
    await client.tend_journal()
    await client.flush()
    assert ledger.opened == ["req-3"] and client.journal.unacked == 0
    await client.close()


async def test_a_new_replica_adopts_a_dead_ones_journal_before_it_serves(tmp_path):
    dead = Journal(tmp_path, "replica-dead")
    await dead.append(row(4))
    dead.close()
    ledger = FakeLedger()
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-new"), timeout_s=1, attempts=1)
    assert await client.tend_journal() == 1
    assert ledger.opened == ["req-4"]
    await client.close()



async def test_a_pending_row_whose_final_row_rides_the_same_batch_is_not_sent_and_is_released(tmp_path):
    from runtime.finops.ledger_store import FinalRow

    ledger = FakeLedger()
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-a"), timeout_s=1, attempts=1, linger_s=10.0)
    await client.admit_and_open_pending(row(5), [])
    await client.admit_and_open_pending(row(6), [])
    await client.finalize(FinalRow(request_id="req-5", user_id="u1", created_at=1_767_225_605.0, cost_usd=0.00002))
    await client.flush()
    assert ledger.opened == ["req-6"] and ledger.finals == ["req-5"]  # req-5 is written by its final row
    assert client.journal.unacked == 0
    await client.close()


class Ticking:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def final(n: int):
    from runtime.finops.ledger_store import FinalRow

    return FinalRow(request_id=f"req-{n}", user_id="u1", created_at=1_767_225_605.0, cost_usd=0.00002)


def holding_client(tmp_path, hold_s: float):  # type: ignore[no-untyped-def]
    """A journaling client that holds pending rows `hold_s` for their final row, on a ticking clock."""
    ledger, clock = FakeLedger(), Ticking()
    client = RayLedgerClient(ledger, journal=Journal(tmp_path, "replica-a"), timeout_s=1, attempts=1,
                             hold_s=hold_s, monotonic=clock)
    return ledger, clock, client


async def test_a_call_that_ends_within_the_hold_sends_the_ledger_its_final_row_alone(tmp_path):
    ledger, clock, client = holding_client(tmp_path, hold_s=1.0)
    await client.admit_and_open_pending(row(7), [])
    await client._rows.flush()  # whatever was queued has gone: the pending row was held back
    assert ledger.opened == [] and ledger.finals == [] and client.journal.unacked == 1
    clock.now += 0.9
    await client.finalize(final(7))
    await client._rows.flush()
    assert ledger.opened == [] and ledger.finals == ["req-7"] and client.journal.unacked == 0
    await client.close()


async def test_a_pending_row_held_past_the_hold_is_sent_by_the_next_admission_or_the_tend(tmp_path):
    ledger, clock, client = holding_client(tmp_path, hold_s=1.0)
    await client.admit_and_open_pending(row(8), [])
    clock.now += 1.5
    await client.admit_and_open_pending(row(9), [])  # req-8 is now older than the hold
    await client._rows.flush()
    assert ledger.opened == ["req-8"]
    clock.now += 1.5
    await client.tend_journal()  # no traffic: the tend sends what is past the hold
    await client._rows.flush()
    assert ledger.opened == ["req-8", "req-9"] and client.journal.unacked == 0
    await client.finalize(final(9))  # its pending row went already: the final row alone
    await client.flush()
    assert ledger.finals == ["req-9"]
    await client.close()


async def test_flush_sends_held_pending_rows_so_reports_see_calls_in_flight(tmp_path):
    ledger, clock, client = holding_client(tmp_path, hold_s=60.0)
    await client.admit_and_open_pending(row(10), [])
    await client.flush()
    assert ledger.opened == ["req-10"]
    await client.close()


def test_rows_cross_a_pickle_as_they_were():
    import pickle

    from runtime.finops.ledger_store import FinalRow, PendingRow

    rows = [final(11), FinalRow(request_id="r", user_id="u", created_at=2.0, status="error", error_kind="timeout",
                                attempts=3, latency_ms=1.5), row(12)]
    copies = pickle.loads(pickle.dumps(rows))
    assert copies == rows and [type(c) for c in copies] == [FinalRow, FinalRow, PendingRow]
    with pytest.raises(ValueError):  # a state of the wrong shape is refused, not half-applied
        PendingRow.__new__(PendingRow).__setstate__(("only-one",))
