"""The FinOps ledger's SQLite store: one group-committing writer, ledger writes, budget
admission, spend queries; reports (runtime/finops/reports.py) and API keys (runtime/finops/keys.py) hang off
it. Usable without Ray (the Ledger actor is a thin shell around it). Schema: ledger_schema.py.

Durability: WAL journal, `synchronous=FULL` by default (checked at open: a store that cannot
get it refuses to start), a `busy_timeout` for other processes' readers. Every write is an
operation queued to ONE writer task; the writer takes everything queued, runs it in one
`BEGIN IMMEDIATE` transaction and commits once (group commit). A lone call commits at once;
under load one commit carries many rows. A caller's `await` returns after its rows are durable.
Money is integer nano-dollars inside, USD floats at this module's edge.
"""
from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field
from typing import Any, Sequence

import aiosqlite

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import (
    Admitted, Budget, BudgetExceeded, BudgetUsage, Scope, admission, period_start, to_usd,
)
from runtime.finops.allowance_schema import SQL_INSERT_ALLOWANCE, SQL_RETURN_ALLOWANCE
from runtime.finops.allowances import AllowanceAsk, Granted, Return, grant_amount
from runtime.finops.keys import DbOp, KeyRegistry, T
from runtime.finops.ledger_rows import FinalRow, PendingRow
from runtime.finops.ledger_schema import (
    MIGRATIONS, SQL_INSERT_PENDING, SQL_METRICS_FROM_USAGE, SQL_RECOVER, SQL_UPSERT_FINAL, TrackedChange, insert_change, migrate, select_change, spend_nusd, update_change,
)
from runtime.finops.reports import Reports

SYNCHRONOUS_LEVELS = {"NORMAL": 1, "FULL": 2, "EXTRA": 3}


class LedgerError(RuntimeError):
    """The ledger cannot run as configured (e.g. the durability setting did not take)."""


async def _write_final(db: aiosqlite.Connection, row: FinalRow) -> None:
    await db.execute(SQL_UPSERT_FINAL, row.params())
    await db.execute(SQL_METRICS_FROM_USAGE, {"request_id": row.request_id, "error_kind": row.error_kind})


def _pending_statements(row: PendingRow) -> list[tuple[str, dict[str, Any]]]:
    return [(SQL_INSERT_PENDING, row.params())]


def _final_statements(row: FinalRow) -> list[tuple[str, dict[str, Any]]]:
    return [(SQL_UPSERT_FINAL, row.params()),
            (SQL_METRICS_FROM_USAGE, {"request_id": row.request_id, "error_kind": row.error_kind})]


async def _each_or_all(db: aiosqlite.Connection, rows: Sequence[Any],
                       statements: Any) -> list[BaseException | None]:
    """Run every row's statements for the whole batch at once (`executemany`, statement by
    statement); if that fails, row by row, so one bad row fails only itself. Every statement
    here is an idempotent upsert or insert-or-nothing, so a row applied twice is applied once."""
    per_row = [statements(r) for r in rows]
    try:
        for i in range(len(per_row[0]) if per_row else 0):
            await db.executemany(per_row[0][i][0], [row_statements[i][1] for row_statements in per_row])
        return [None] * len(rows)
    except sqlite3.Error:
        results: list[BaseException | None] = []
        for row_statements in per_row:
            try:
                for sql, params in row_statements:
                    await db.execute(sql, params)
                results.append(None)
            except sqlite3.Error as exc:
                results.append(exc)
        return results


async def _return(db: aiosqlite.Connection, returns: Sequence[Return]) -> None:
    if returns:
        await db.executemany(SQL_RETURN_ALLOWANCE, [{"allowance_id": r.allowance_id, "used": r.used_nusd}
                                                    for r in returns])


# ------------------------------------------------------------------------------ group commit


@dataclass
class WriterStats:
    commits: int = 0
    ops: int = 0
    largest_batch: int = 0
    failed_batches: int = 0


@dataclass(slots=True)
class _Op:
    fn: Any
    future: asyncio.Future = field(repr=False)


async def _noop(db: aiosqlite.Connection) -> None:
    return None


class GroupWriter:
    """The only writer. Callers `submit` an operation and await it; the writer task takes every
    operation queued so far (up to `max_batch`), runs them in order in one `BEGIN IMMEDIATE`
    transaction and commits once. There is no waiting for company: a lone operation commits
    at once, and whatever queues up meanwhile rides the next commit. If a batch fails, each
    of its operations is retried in a transaction of its own, so one bad operation fails only
    its own caller. An operation whose caller was cancelled still runs (a charge is never
    dropped because a client went away)."""

    def __init__(self, db: aiosqlite.Connection, max_batch: int = 1_000) -> None:
        self._db = db
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Op | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.stats = WriterStats()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ledger-writer")

    async def submit(self, fn: DbOp[T]) -> T:
        if self._closed:
            raise LedgerError("the ledger writer is closed")
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Op(fn, future))
        return await future

    async def flush(self) -> None:
        await self.submit(_noop)

    async def close(self) -> None:
        if self._closed:
            return
        await self.flush()
        self._closed = True
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    self._queue.put_nowait(None)  # stop after this batch
                    break
                batch.append(nxt)
            await self._commit(batch)

    async def _commit(self, batch: list[_Op]) -> None:
        try:
            results = await self._transaction(batch)
        except Exception as exc:  # noqa: BLE001 - delivered to the callers
            self.stats.failed_batches += 1
            if len(batch) == 1:
                _settle(batch[0].future, error=exc)
                return
            for op in batch:
                await self._commit([op])
            return
        for op, result in zip(batch, results):
            _settle(op.future, result=result)

    async def _transaction(self, batch: list[_Op]) -> list[Any]:
        db = self._db
        await db.execute("BEGIN IMMEDIATE")
        try:
            results = [await op.fn(db) for op in batch]
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise
        self.stats.commits += 1
        self.stats.ops += len(batch)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        return results


def _settle(future: asyncio.Future, *, result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the caller was cancelled: the write happened anyway
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# ------------------------------------------------------------------------------------ store


class LedgerStore:
    """One SQLite file, one writer connection (group-committed), one read-only reader."""

    def __init__(
        self,
        path: str,
        *,
        clock: Clock = SYSTEM_CLOCK,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5_000,
        max_batch: int = 1_000,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_LEVELS)}")
        self.path = str(path)
        self.clock = clock
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._max_batch = max_batch
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer: GroupWriter | None = None
        self.reports = Reports(self.read, clock)
        self.keys = KeyRegistry(self, clock)

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> "LedgerStore":
        db = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await self._configure(db)
            await migrate(db, MIGRATIONS, self.clock.time())
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            await reader.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
            await reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await db.close()
            raise
        self._db, self._reader = db, reader
        self._writer = GroupWriter(db, self._max_batch)
        self._writer.start()
        return self

    async def _configure(self, db: aiosqlite.Connection) -> None:
        # PRAGMA values cannot be bound: both come from a whitelist / an int, never from input.
        await db.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        mode = await (await db.execute("PRAGMA journal_mode = WAL")).fetchone()
        await db.execute(f"PRAGMA synchronous = {self._synchronous}")
        level = await (await db.execute("PRAGMA synchronous")).fetchone()
        if str(mode[0]).lower() != "wal":
            raise LedgerError(f"ledger {self.path}: journal_mode is {mode[0]!r}, not WAL")
        if level[0] != SYNCHRONOUS_LEVELS[self._synchronous]:
            raise LedgerError(f"ledger {self.path}: synchronous={self._synchronous} did not take effect")

    async def close(self) -> None:
        """Flush every queued write, then close both connections."""
        if self._writer is not None:
            await self._writer.close()
        for conn in (self._reader, self._db):
            if conn is not None:
                await conn.close()
        self._db = self._reader = self._writer = None

    async def __aenter__(self) -> "LedgerStore":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- primitives --------------------------------------------------------------------------

    @property
    def stats(self) -> WriterStats:
        return self._require_writer().stats

    async def submit(self, op: DbOp[T]) -> T:
        """Run `op(connection)` inside the next group-committed write transaction."""
        return await self._require_writer().submit(op)

    async def read(self, op: DbOp[T]) -> T:
        if self._reader is None:
            raise LedgerError("the ledger store is not open")
        return await op(self._reader)

    async def drain(self) -> None:
        """Return once every write queued so far is committed."""
        await self._require_writer().flush()

    def _require_writer(self) -> GroupWriter:
        if self._writer is None:
            raise LedgerError("the ledger store is not open")
        return self._writer

    async def schema_versions(self) -> list[int]:
        async def select(db: aiosqlite.Connection) -> list[int]:
            cursor = await db.execute("SELECT version FROM schema_version ORDER BY version")
            return [v for (v,) in await cursor.fetchall()]

        return await self.read(select)

    # -- ledger ------------------------------------------------------------------------------

    async def open_pending(self, row: PendingRow) -> None:
        """Commit a pending row at its reservation. Repeating it for the same id is a no-op."""
        params = row.params()

        async def insert(db: aiosqlite.Connection) -> None:
            await db.execute(SQL_INSERT_PENDING, params)

        await self.submit(insert)

    async def finalize(self, row: FinalRow) -> None:
        """Upsert the outcome on request_id: replaces a pending row, inserts when there is none,
        overwrites an earlier final row (a retried finalize never charges twice)."""

        async def upsert(db: aiosqlite.Connection) -> None:
            await _write_final(db, row)

        await self.submit(upsert)

    async def open_pending_many(self, rows: Sequence[PendingRow]) -> list[BaseException | None]:
        """`open_pending` for a batch, in one statement (one result per row)."""
        return await self.submit(lambda db: _each_or_all(db, rows, _pending_statements))

    async def finalize_many(self, rows: Sequence[FinalRow]) -> list[BaseException | None]:
        """`finalize` for a batch, in two statements (one result per row)."""
        return await self.submit(lambda db: _each_or_all(db, rows, _final_statements))

    async def write_rows(self, pending: Sequence[PendingRow], finals: Sequence[FinalRow],
                         returns: Sequence[Return] = ()) -> tuple[list[BaseException | None], list[BaseException | None]]:
        """`open_pending_many` and `finalize_many` in one write transaction (one commit), then
        the allowances given back (`return_allowances`)."""
        async def both(db: aiosqlite.Connection):
            results = await _each_or_all(db, pending, _pending_statements), await _each_or_all(db, finals, _final_statements)
            await _return(db, returns)
            return results

        return await self.submit(both)

    async def grant_allowance(self, ask: AllowanceAsk, budgets: Sequence[Budget]) -> Granted | BudgetExceeded:
        """Grant a replica an allowance of `ask`'s key's budgets (runtime/finops/allowances.py),
        decided like an admission: in the writer's transaction, against every earlier write. The
        same ask again (a retry) gets the same grant, not a second one."""
        for budget in budgets:
            if not _covers(budget.scope, ask):
                raise ValueError(f"budget {budget.name!r} does not cover allowance {ask.allowance_id!r}")

        async def grant(db: aiosqlite.Connection) -> Granted | BudgetExceeded:
            cursor = await db.execute("SELECT granted FROM allowances WHERE allowance_id = ?", (ask.allowance_id,))
            if (known := await cursor.fetchone()) is not None:
                return Granted(ask.allowance_id, int(known[0]))
            usages = []
            for budget in budgets:
                start = period_start(budget.period, ask.created_at)
                usages.append(BudgetUsage(budget, start, *await spend_nusd(db, budget.scope, start)))
            amount = grant_amount(usages, ask.least_nusd, ask.want_nusd)
            if amount is None:
                return admission(usages, ask.allowance_id, ask.least_nusd)
            await db.execute(SQL_INSERT_ALLOWANCE, {
                "allowance_id": ask.allowance_id, "user_id": ask.user_id, "key_id": ask.key_id,
                "granted": amount, "created_at": ask.created_at, "expires_at": ask.expires_at})
            return Granted(ask.allowance_id, amount, tuple(usages))

        return await self.submit(grant)

    async def return_allowances(self, returns: Sequence[Return]) -> None:
        """Allowances given back: each now counts what its rows came to (idempotent)."""
        await self.submit(lambda db: _return(db, returns))

    async def record(self, row: FinalRow) -> None:
        """A call that had no pending row (cache hits, refusals): the same idempotent upsert."""
        await self.finalize(row)

    async def recover(self, older_than_s: float) -> int:
        """Pending rows older than `older_than_s` become 'unknown', charged at their
        reservation (their call may have been paid for). Returns how many."""
        cutoff = self.clock.time() - older_than_s

        async def settle(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(SQL_RECOVER, (cutoff,))
            ids = [request_id for (request_id,) in await cursor.fetchall()]
            await db.executemany(SQL_METRICS_FROM_USAGE, [{"request_id": i, "error_kind": "unknown"} for i in ids])
            return len(ids)

        return await self.submit(settle)

    async def spend(self, scope: Scope, since_wall: float) -> tuple[float, float]:
        """(spent_usd, reserved_usd) of `scope` since the UTC day containing `since_wall`
        (spend is kept per UTC day). Pending rows count at their reservation, in `reserved`."""

        async def select(db: aiosqlite.Connection) -> tuple[int, int]:
            return await spend_nusd(db, scope, since_wall)

        spent, reserved = await self.read(select)
        return to_usd(spent), to_usd(reserved)

    # -- tracked changes (visual editor) -------------------------------------------------------

    async def store_change(self, change: TrackedChange) -> None:
        await self.submit(lambda db: insert_change(db, change))

    async def get_change(self, change_id: str) -> TrackedChange | None:
        return await self.read(lambda db: select_change(db, change_id))

    async def update_change(self, change_id: str, status: str, result: dict[str, Any] | None = None,
                            expect_status: str | None = None) -> bool:
        """Set a change's status (and result); with `expect_status` only from that status (a
        compare-and-set: of two concurrent confirmations exactly one claims the change)."""
        now = self.clock.time()
        return await self.submit(lambda db: update_change(db, change_id, status, now, result, expect_status))

    async def admit_and_open_pending(
        self, row: PendingRow, budgets: Sequence[Budget]
    ) -> Admitted | BudgetExceeded:
        """Open the pending row only if every budget still has room for its reservation.

        Race-free because the check and the insert are one operation run by the single writer,
        inside its write transaction: operations run strictly one after another on the one
        connection that performs every write, so no other reservation, finalize or recovery
        can land between this request's spend read and its pending insert. The spend it reads
        includes every earlier operation (committed, or earlier in the same batch). A retry
        with a request_id already in the ledger is admitted without reserving again."""
        for budget in budgets:
            if not _covers(budget.scope, row):
                raise ValueError(f"budget {budget.name!r} does not cover request {row.request_id!r}")
        params = row.params()

        async def admit(db: aiosqlite.Connection) -> Admitted | BudgetExceeded:
            cursor = await db.execute("SELECT 1 FROM agent_token_usage WHERE request_id = ?", (row.request_id,))
            if await cursor.fetchone() is not None:
                return Admitted(row.request_id, (), row.reserved_usd)
            usages = []
            for budget in budgets:
                start = period_start(budget.period, row.created_at)
                usages.append(BudgetUsage(budget, start, *await spend_nusd(db, budget.scope, start)))
            result = admission(usages, row.request_id, params["reserved_cost"])
            if isinstance(result, Admitted):
                await db.execute(SQL_INSERT_PENDING, params)
            return result

        return await self.submit(admit)


def _covers(scope: Scope, row: PendingRow | AllowanceAsk) -> bool:
    """Whether a budget of `scope` counts `row` (else its check would guard someone else)."""
    return (
        scope.kind == "all"
        or (scope.kind == "user" and scope.id == row.user_id)
        or (scope.kind == "key" and scope.id == row.key_id)
    )
