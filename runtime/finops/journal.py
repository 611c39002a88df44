"""The replica's pending-row journal: the durable record of an upstream call, written before
the call without a round trip to the ledger.

A request whose key has no budgets (nothing to check against other replicas' spend) appends its
pending row here and waits only for its own group commit: every row queued while the previous
write+fdatasync ran goes out in the next one, so under load the cost of the sync is shared.
Durable to the same level as the ledger's own commits (SQLite `synchronous=FULL`): on disk
before the call is made. The ledger learns of the row in the background (`Forwarder`); the
journal forgets a row once the ledger has committed it.

Files: `<dir>/<holder>-<n>.jsonl`, one JSON row per line, each held under an exclusive `flock`
by its live writer. A segment is closed after `segment_bytes` and deleted once all its rows
are with the ledger. A writer that dies (SIGKILL, OOM, node restart) drops its locks; any other
process that can take a segment's lock knows its writer is gone and adopts it
(`adopt_orphans`): it sends the rows to the ledger (an existing row is left alone) and deletes
the file. Those pending rows are then settled like any other: by their final row if it made it,
else `unknown` at their reservation by the ledger's recovery. Never under-charged.

A segment is created under a temporary name, locked, then renamed: an adopter never sees an
unlocked live segment.
"""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Sequence

import structlog

from runtime.finops.errors import LedgerUnavailableError
from runtime.finops.ledger_rows import PendingRow

log = structlog.get_logger("switchboard.journal")

SEGMENT_BYTES = 4 << 20
SUFFIX = ".jsonl"

Sync = Callable[[int], None]


#: a pending row's fields are flat scalars: read them by name (dataclasses.asdict deep-copies
#: every value, a third of the journal's CPU per row)
_FIELDS = tuple(f.name for f in fields(PendingRow))


def encode(row: PendingRow) -> bytes:
    return json.dumps({name: getattr(row, name) for name in _FIELDS}, separators=(",", ":")).encode() + b"\n"


def decode(lines: Iterable[bytes]) -> list[PendingRow]:
    """The rows of a segment; a torn last line (the writer died mid-write, before its sync
    returned: that call was never made) is skipped."""
    rows = []
    for line in lines:
        if not line.endswith(b"\n"):
            continue
        try:
            rows.append(PendingRow(**json.loads(line)))
        except (ValueError, TypeError) as exc:
            log.error("journal.bad_line", error=str(exc))
    return rows


class _Segment:
    def __init__(self, directory: Path, holder: str, number: int) -> None:
        self.path = directory / f"{holder}-{number}{SUFFIX}"
        temporary = self.path.with_suffix(".tmp")
        self.fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, self.path)
        self.size = 0
        self.unacked = 0
        self.closed = False

    def delete(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)


class Ticket:
    """Which segment holds a journaled row (give it back with `Journal.ack`)."""

    __slots__ = ("segment",)

    def __init__(self, segment: _Segment) -> None:
        self.segment = segment


class Journal:
    def __init__(self, directory: str | os.PathLike[str], holder: str, *, sync: Sync = os.fdatasync,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.holder = holder
        self._sync = sync
        self._segment_bytes = segment_bytes
        self._number = 0
        self._segments: list[_Segment] = [self._new_segment()]
        self._queue: list[tuple[bytes, asyncio.Future[Ticket]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.commits = 0
        self.rows = 0

    def _new_segment(self) -> _Segment:
        self._number += 1
        return _Segment(self.directory, self.holder, self._number)

    @property
    def unacked(self) -> int:
        return sum(s.unacked for s in self._segments)

    async def append(self, row: PendingRow) -> Ticket:
        """Return once `row` is on disk (with every row queued meanwhile)."""
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        self._queue.append((encode(row), future))
        if self._writer is None:
            self._writer = asyncio.ensure_future(self._write_queued())
        return await future

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                segment = self._current()
                data = b"".join(line for line, _ in batch)
                try:
                    await asyncio.to_thread(self._write, segment.fd, data)
                except OSError as exc:
                    error = LedgerUnavailableError(f"the ledger journal could not be written ({exc.strerror})")
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                segment.size += len(data)
                segment.unacked += len(batch)
                self.commits += 1
                self.rows += len(batch)
                ticket = Ticket(segment)
                for _, future in batch:
                    if not future.done():
                        future.set_result(ticket)
        finally:
            self._writer = None

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        self._sync(fd)

    def _current(self) -> _Segment:
        current = self._segments[-1]
        if current.size >= self._segment_bytes:
            current.closed = True
            current = self._new_segment()
            self._segments.append(current)
            self._drop_acked()
        return current

    def ack(self, ticket: Ticket) -> None:
        """The ledger has committed the row: the journal need not keep it."""
        ticket.segment.unacked -= 1
        if ticket.segment.closed and ticket.segment.unacked == 0:
            self._drop_acked()

    def _drop_acked(self) -> None:
        for segment in [s for s in self._segments if s.closed and s.unacked == 0]:
            segment.delete()
            self._segments.remove(segment)

    def close(self) -> None:
        """A clean stop: delete what the ledger has; leave the rest to be adopted."""
        for segment in self._segments:
            if segment.unacked == 0:
                segment.delete()
            else:
                os.close(segment.fd)  # the lock goes with it: the next replica adopts the file
        self._segments = []


def orphan_segments(directory: str | os.PathLike[str]) -> list[Path]:
    path = Path(directory)
    return sorted(path.glob(f"*{SUFFIX}")) if path.is_dir() else []


async def adopt_orphans(directory: str | os.PathLike[str],
                        send: Callable[[Sequence[PendingRow]], Awaitable[Any]]) -> int:
    """Hand the rows of every segment whose writer is gone to the ledger (`send`, which must be
    idempotent per request_id), then delete it. Returns how many rows; a segment whose send
    fails stays for the next attempt."""
    adopted = 0
    for path in orphan_segments(directory):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue  # adopted by another process meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its writer is alive
            if not path.exists():
                continue  # adopted and deleted between our open and our lock
            with open(fd, "rb", closefd=False) as fh:
                rows = decode(fh.readlines())
            if rows:
                await send(rows)
            path.unlink(missing_ok=True)
            adopted += len(rows)
            log.warning("journal.adopted", segment=path.name, rows=len(rows))
        except Exception as exc:  # noqa: BLE001 - the ledger is away: next time
            log.error("journal.adopt_failed", segment=path.name, error=str(exc))
        finally:
            os.close(fd)
    return adopted
