"""The replica's view of the Ledger actor: the actor's async methods, each bounded by a timeout,
idempotent ones retried, and every way of not reaching the actor turned into one error
(`LedgerUnavailableError`, HTTP 503).

Why retrying is safe: ledger writes are upserts on request_id, an admission for a request_id
already in the ledger is admitted without reserving again, and key changes are idempotent.
Only `create_key` is not (it mints a new key), so it is tried once. A call that reached an
actor that then died fails with a RayActorError; the retry is queued by Ray until the
restarted actor is up (`max_restarts=-1`), within the timeout.

The two calls every request makes go in batches (runtime.batching). The pending row is durable
before the provider is called: with a journal, the row is group-committed to this replica's
journal (runtime/finops/journal.py) and sent on in the background, so the request waits for a
local fdatasync shared with its neighbours, not a hop and a commit. A key with budgets is then
admitted against a spending allowance this replica holds (runtime/finops/allowances.py: one
awaited grant per key every few seconds, not one admission per request); without a journal,
the ledger admits each request (the awaited, batched hop and its commit). A journaled row is held back
for up to `hold_s` so that a call which ends sooner sends the ledger its final row alone. Final rows are
not awaited — the response does not wait for its row, which is sent with the others queued
meanwhile. A final
row that never reaches the ledger leaves its pending row, settled `unknown` at its
reservation: never under-charged. `flush()` sends what is queued; the reports call it first,
so a replica reads its own writes, and the deployment calls it on shutdown.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable, Sequence

import ray
import structlog

from runtime.finops.allowances import AllowanceBook, Return
from runtime.finops.batching import Batcher
from runtime.finops.budget import Admitted, Budget, BudgetExceeded, BudgetState, to_nusd
from runtime.finops.errors import LedgerUnavailableError
from runtime.finops.journal import Journal, Ticket, adopt_orphans
from runtime.finops.ledger_rows import PendingRow

log = structlog.get_logger("switchboard.ledger_client")

#: seconds between rounds of re-sending what the ledger did not take and adopting dead journals
TEND_S = 10.0
#: final rows kept to send again while the ledger is away (journaled pending rows are all kept)
MAX_UNSENT_FINALS = 100_000
#: how long a journaled pending row waits for its final row before it is sent on its own
HOLD_S = 1.0
UNREACHABLE = (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError, asyncio.TimeoutError)


class RayLedgerClient:
    def __init__(self, handle: Any, *, timeout_s: float = 5.0, attempts: int = 3,
                 max_batch: int = 256, max_in_flight: int = 2, journal: Journal | None = None,
                 linger_s: float = 0.0, hold_s: float = HOLD_S, allowances: AllowanceBook | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        """`linger_s`: how long rows nobody waits for (final rows, journaled pending rows) may
        wait for company before they are sent. `hold_s`: how long a journaled pending row is
        kept back for its final row (a call that ends sooner costs the ledger one row, not two;
        the journal has the pending row all along). `allowances`: admit keys with budgets
        against spending allowances (needs the journal)."""
        self._handle = handle
        self._timeout_s = timeout_s
        self._attempts = attempts
        self.journal = journal
        self._hold_s = hold_s
        self._monotonic = monotonic
        self._wall = wall
        self.allowances = allowances if journal is not None else None
        self._granting: dict[Any, asyncio.Future[tuple[BudgetExceeded, int] | None]] = {}
        self._held: OrderedDict[str, tuple[float, _Journaled]] = OrderedDict()
        self._unsent: list[_Journaled] = []
        self._tender: asyncio.Task[None] | None = None
        self._admissions: Batcher[tuple[Any, list[Budget]], Admitted | BudgetExceeded] = Batcher(
            lambda batch: self._call("admit_many", batch), max_batch=max_batch, max_in_flight=max_in_flight,
        )
        self._rows: Batcher[_Journaled | Any, None] = Batcher(
            self._send_rows, max_batch=max_batch, max_in_flight=max_in_flight,
            on_error=self._not_taken, on_sent=self._taken, linger_s=linger_s, sleep=sleep,
        )

    async def _call(self, method: str, *args: Any, idempotent: bool = True, **kwargs: Any) -> Any:
        tries = self._attempts if idempotent else 1
        last: BaseException | None = None
        for _ in range(tries):
            ref = getattr(self._handle, method).remote(*args, **kwargs)
            try:
                return await asyncio.wait_for(ref, self._timeout_s)
            except UNREACHABLE as exc:
                last = exc
                log.warning("finops.ledger_call_failed", method=method, error=type(exc).__name__)
        raise LedgerUnavailableError(f"the ledger did not answer {method} ({type(last).__name__})") from last

    # -- the request path ----------------------------------------------------------------------

    async def admit_and_open_pending(self, row: Any, budgets: Sequence[Budget]) -> Admitted | BudgetExceeded:
        """With a journal, the pending row is made durable here and sent on in the background;
        with budgets, first drawn from this replica's allowance for the key (asking the ledger
        for one when it has none with room). Without a journal, the ledger decides each
        admission with budgets (one awaited, batched hop and its commit)."""
        if self.journal is None or (budgets and self.allowances is None):
            return await self._admissions.call((row, list(budgets)))
        if budgets:
            refused = await self._draw_allowance(row, budgets)
            if refused is not None:
                return refused
            row = replace(row, allowance_id=self.allowances.allowance_of(row.request_id))
        try:
            ticket = await self.journal.append(row)
        except BaseException:
            if budgets:  # never made: nothing of the allowance is spent on it
                await self._submit_returns(self.allowances.settle(row.request_id, 0)[1])
            raise
        now = self._monotonic()
        self._held[row.request_id] = (now, _Journaled(row, ticket))
        await self._release_held(now - self._hold_s)
        return Admitted(row.request_id, (), row.reserved_usd)

    async def _draw_allowance(self, row: Any, budgets: Sequence[Budget]) -> BudgetExceeded | None:
        """Draw the row's reservation from its key's allowance, asking the ledger for one when
        there is none with room (one ask per key at a time; who waits for another's ask and
        does not fit asks again). A refusal of an ask for no more than this row needs is this
        row's refusal."""
        assert self.allowances is not None
        key = (row.key_id, row.user_id, tuple(budgets))
        reserved = to_nusd(row.reserved_usd)
        while True:
            allowance_id, returns = self.allowances.admit(key, row.request_id, reserved, row.created_at)
            await self._submit_returns(returns)
            if allowance_id is not None:
                return None
            asking = self._granting.get(key)
            if asking is None or asking.done():  # a done ask is never awaited again: no loop without a hop
                asking = asyncio.ensure_future(self._grant(key, row, budgets, reserved))
                self._granting[key] = asking
                asking.add_done_callback(lambda done, key=key: self._forget_ask(key, done))
            refusal = await asyncio.shield(asking)
            if refusal is not None and refusal[1] <= reserved:
                return refusal[0]

    def _forget_ask(self, key: Any, done: asyncio.Future[Any]) -> None:
        if self._granting.get(key) is done:
            del self._granting[key]

    async def _grant(self, key: Any, row: Any, budgets: Sequence[Budget],
                     reserved: int) -> tuple[BudgetExceeded, int] | None:
        assert self.allowances is not None
        ask = self.allowances.ask(key, row.user_id, row.key_id, reserved, row.created_at)
        result = await self._call("grant_allowance", ask, list(budgets))
        if isinstance(result, BudgetExceeded):
            return result, ask.least_nusd
        await self._submit_returns(self.allowances.install(key, ask, result))
        return None

    async def _submit_returns(self, returns: list[Return]) -> None:
        for item in returns:
            await self._rows.submit(item)

    async def _release_held(self, before: float) -> None:
        """Send on the held pending rows journaled before `before` (monotonic seconds)."""
        while self._held:
            request_id, (at, item) = next(iter(self._held.items()))
            if at > before:
                return
            del self._held[request_id]
            await self._rows.submit(item)

    async def _send_rows(self, items: list[Any]) -> list[BaseException | None]:
        """One call for a batch of journaled pending rows and final rows. A pending row whose
        final row rides the same batch is not sent: the final row's upsert writes the row."""
        returns = [i for i in items if isinstance(i, Return)]
        finals = [i for i in items if not isinstance(i, (_Journaled, Return))]
        closed = {r.request_id for r in finals}
        pending = [i.row for i in items if isinstance(i, _Journaled) and i.row.request_id not in closed]
        if pending or returns:
            pending_results, final_results = await self._call("write_rows", pending, finals, returns)
        else:
            pending_results, final_results = [], await self._call("write_many", finals)
        by_final = dict(zip([r.request_id for r in finals], final_results))
        by_pending = dict(zip([r.request_id for r in pending], pending_results))
        return [None if isinstance(i, Return)
                else (by_final if i.row.request_id in closed else by_pending)[i.row.request_id]
                if isinstance(i, _Journaled) else by_final[i.request_id] for i in items]

    def _taken(self, items: list[Any]) -> None:
        for item in items:
            if isinstance(item, _Journaled):
                assert self.journal is not None
                self.journal.ack(item.ticket)

    def _not_taken(self, items: list[Any], error: BaseException) -> None:
        """Rows the ledger did not take are sent again (next flush or tend). Journaled pending
        rows and returned allowances are kept whatever happens (the journal has the rows too);
        final rows up to MAX_UNSENT_FINALS, beyond which they are logged as lost (their pending
        rows are settled `unknown` at their reservation: never under-charged)."""
        log.warning("finops.rows_not_sent", rows=len(items), error=str(error))
        room = MAX_UNSENT_FINALS - sum(not _always_kept(i) for i in self._unsent)
        lost = []
        for item in items:
            if _always_kept(item) or room > 0:
                self._unsent.append(item)
                room -= 0 if _always_kept(item) else 1
            else:
                lost.append(item)
        if lost:
            _log_lost_rows(lost, error)

    async def _send_again(self) -> None:
        unsent, self._unsent = self._unsent, []
        for item in unsent:
            await self._rows.submit(item)

    async def tend_journal(self) -> int:
        """Send again what the ledger did not take, and adopt the journals of dead replicas
        (runtime/finops/journal.py). Returns how many rows were adopted."""
        if self.journal is None:
            return 0
        if self.allowances is not None:
            await self._submit_returns(self.allowances.retire_expired(self._wall()))
        await self._release_held(self._monotonic() - self._hold_s)
        await self._send_again()
        return await adopt_orphans(self.journal.directory, lambda rows: self._call("open_many", list(rows)))

    async def finalize(self, row: Any) -> None:
        """Queue the final row (upsert on request_id) and return: it is sent in the next batch,
        with its pending row if that is still held (which it then supersedes)."""
        returns: list[Return] = []
        if self.allowances is not None:
            allowance_id, returns = self.allowances.settle(row.request_id, to_nusd(row.cost_usd))
            if allowance_id is not None:
                row = replace(row, allowance_id=allowance_id)
        held = self._held.pop(row.request_id, None)
        if held is not None:
            await self._rows.submit(held[1])
        await self._rows.submit(row)
        await self._submit_returns(returns)

    async def record(self, row: Any) -> None:
        """A row without a pending one (cache hit, refusal): queued like a final row."""
        await self._rows.submit(row)

    def start_tending(self, sleep: Callable[[float], Awaitable[None]], every_s: float = TEND_S) -> None:
        """Run `tend_journal` every `every_s` in the background until `close()`."""
        if self.journal is not None and self._tender is None:
            self._tender = asyncio.get_running_loop().create_task(self._tend_forever(sleep, every_s))

    async def _tend_forever(self, sleep: Callable[[float], Awaitable[None]], every_s: float) -> None:
        while True:
            await sleep(every_s)
            try:
                await self.tend_journal()
            except Exception:  # noqa: BLE001
                log.exception("finops.journal_tend_failed")

    async def flush(self) -> None:
        """Every row queued so far has been sent (and committed, or kept to send again), held
        pending rows too."""
        await self._release_held(float("inf"))
        await self._send_again()
        await self._rows.flush()

    async def close(self) -> None:
        """Send what is queued; the journal keeps only what the ledger does not have yet."""
        if self._tender is not None:
            self._tender.cancel()
            self._tender = None
        if self.allowances is not None:  # one with calls in flight stays counted for its day
            await self._submit_returns(self.allowances.retire_all())
        await self.flush()
        if self.journal is not None:
            self.journal.close()

    async def budget_state(self, daily_budget_usd: float | None) -> BudgetState:
        return await self._call("budget_state", daily_budget_usd)

    async def lookup_by_key(self, key: str) -> Any:
        return await self._call("lookup_by_key", key)

    # -- keys ----------------------------------------------------------------------------------

    async def create_key(self, user_id: str, **fields: Any) -> Any:
        return await self._call("create_key", user_id, idempotent=False, **fields)

    async def list_keys(self, user_id: str | None = None) -> Any:
        return await self._call("list_keys", user_id)

    async def get_key(self, key_id: str) -> Any:
        return await self._call("get_key", key_id)

    async def disable_key(self, key_id: str) -> bool:
        return await self._call("disable_key", key_id)

    async def enable_key(self, key_id: str) -> bool:
        return await self._call("enable_key", key_id)

    async def delete_key(self, key_id: str) -> bool:
        return await self._call("delete_key", key_id)

    # -- reports -------------------------------------------------------------------------------

    async def summary(self, user_id: str | None = None, days: int = 30) -> Any:
        await self.flush()
        return await self._call("summary", user_id, days)

    async def by_user(self, user_id: str | None = None, days: int = 30) -> Any:
        await self.flush()
        return await self._call("by_user", user_id, days)

    async def by_agent(self, days: int = 30, user_id: str | None = None) -> Any:
        await self.flush()
        return await self._call("by_agent", days, user_id)

    async def daily(self, days: int = 30, user_id: str | None = None) -> Any:
        await self.flush()
        return await self._call("daily", days, user_id)

    async def conversations(self, days: int = 7, limit: int = 10, user_id: str | None = None) -> Any:
        await self.flush()
        return await self._call("conversations", days, limit, user_id)

    async def latency(self, model: str | None = None, days: int = 30, user_id: str | None = None) -> Any:
        await self.flush()
        return await self._call("latency", model, days, user_id)


@dataclass(frozen=True, slots=True)
class _Journaled:
    """A pending row made durable in the journal, on its way to the ledger."""

    row: PendingRow
    ticket: Ticket


def _always_kept(item: Any) -> bool:
    """Sent again however long the ledger is away: the journal holds the pending rows, and an
    allowance not returned stays counted until its day ends."""
    return isinstance(item, (_Journaled, Return))


def _log_lost_rows(rows: list[Any], error: BaseException) -> None:
    """Rows the ledger did not take: their pending rows stay and are settled `unknown`."""
    for row in rows:
        log.error("finops.finalize_failed", request_id=getattr(row, "request_id", None), error=str(error))
