"""The Ledger actor: a thin shell around `LedgerStore` (the only SQLite writer in the cluster).

`ray.remote(LedgerActor).options(**ledger_actor_options())` makes the actor; the class itself
needs no Ray, so tests can drive it directly. It opens the store on first use (and on every
restart: Ray re-runs the constructor), settles stale pending rows ('unknown', charged at their
reservation) then and every `request_timeout_s` afterwards, drains the write queue on `drain()`
(and on SIGTERM where a handler can be installed: see `_install_sigterm`), and turns budget usage into alerts: structlog events, and optionally a JSON
POST to a webhook, sent in the background so no request waits for it.

Calls are not retried by Ray (`max_task_retries=0`): a write is idempotent on request_id, but
an admission is not, and the caller decides.
"""
from __future__ import annotations

import asyncio
import signal
import threading
from dataclasses import asdict
from typing import Any, Sequence

import httpx
import structlog

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import (
    ALL, Admitted, Alert, AlertTracker, Budget, BudgetExceeded, BudgetState, Scope, budget_state, to_nusd, utc_day_start,
)
from runtime.finops.allowances import AllowanceAsk, Granted, Return
from runtime.finops.keys import KeyRecord, NewKey
from runtime.finops.ledger_schema import TrackedChange
from runtime.finops.ledger_store import FinalRow, LedgerStore, PendingRow, WriterStats
from runtime.finops.reports import (
    AgentCost, ConversationCost, DayCost, LatencyReport, Summary, UserCost,
)
from providers.named_actor import HIGH_RATE, named_actor_options

log = structlog.get_logger("switchboard.ledger")

DEFAULT_ACTOR_NAME = "ledger"
DRAIN_ON_EXIT_TIMEOUT_S = 10.0


def ledger_actor_options(name: str = DEFAULT_ACTOR_NAME, namespace: str | None = None) -> dict[str, Any]:
    return named_actor_options(name, namespace, **HIGH_RATE)  # an admission is not idempotent: never replayed


class AlertNotifier:
    """Logs each alert and, with a webhook URL, POSTs it as JSON in a background task."""

    def __init__(self, webhook_url: str | None = None, timeout_s: float = 5.0) -> None:
        self.webhook_url = webhook_url
        self._timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()

    def emit(self, alert: Alert) -> None:
        body = {**asdict(alert), "percent": round(alert.percent, 2)}
        log.warning("finops.budget_alert", **body)
        if self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._post(body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, body: dict[str, Any]) -> None:
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s, trust_env=False) as client:
                response = await client.post(self.webhook_url, json={"type": "budget_alert", **body})
                response.raise_for_status()
        except Exception as exc:  # noqa: BLE001 - an alert channel failing must not fail a request
            log.error("finops.alert_webhook_failed", error=repr(exc), budget=body["budget"])

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


class LedgerActor:
    def __init__(
        self,
        db_path: str,
        clock: Clock | None = None,
        *,
        request_timeout_s: float = 120.0,
        alert_webhook_url: str | None = None,
        synchronous: str = "FULL",
    ) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._store = LedgerStore(db_path, clock=self._clock, synchronous=synchronous)
        self._request_timeout_s = request_timeout_s
        self._alerts = AlertTracker()
        self._notifier = AlertNotifier(alert_webhook_url)
        self._opening: asyncio.Task[LedgerStore] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: threading.Thread | None = None
        self._last_recover = float("-inf")
        self._previous_sigterm = self._install_sigterm()

    # -- lifecycle ---------------------------------------------------------------------------

    async def _ready(self) -> LedgerStore:
        if self._opening is None:  # no await before the assignment: one opener only
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.current_thread()
            self._opening = self._loop.create_task(self._store.open())
        store = await asyncio.shield(self._opening)
        await self._recover_if_due(store)
        return store

    async def _recover_if_due(self, store: LedgerStore) -> None:
        """At the first call after a (re)start, then once per request timeout."""
        now = self._clock.monotonic()
        if now - self._last_recover >= self._request_timeout_s:
            self._last_recover = now
            settled = await store.recover(self._request_timeout_s)
            if settled:
                log.warning("finops.pending_settled_unknown", rows=settled)

    async def drain(self) -> None:
        """Every write queued so far is committed (and pending alert webhooks are sent)."""
        if self._opening is not None:
            await (await self._ready()).drain()
        await self._notifier.flush()

    async def close(self) -> None:
        await self.drain()
        if self._opening is not None:
            await self._store.close()
            self._opening = None

    def _install_sigterm(self) -> Any:
        """Built on a main thread (a plain process), SIGTERM drains the queue and then does
        what it did before. In a Ray worker the constructor runs on the actor's asyncio
        thread, where Python cannot install signal handlers (and Ray's SIGTERM exit runs no
        atexit hooks): there every acknowledged write is already durable (a call returns after
        its commit), calls still in flight fail to their callers (who may retry: writes are
        idempotent on request_id), and the app calls `drain()` before stopping the actor."""
        try:
            return signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread
            return None

    def _drain_from_another_thread(self) -> None:
        loop = self._loop
        if loop is None or not loop.is_running() or threading.current_thread() is self._loop_thread:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.drain(), loop).result(DRAIN_ON_EXIT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - exiting anyway; say what was lost
            log.error("finops.drain_on_sigterm_failed", error=repr(exc))

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        loop = self._loop
        if loop is not None and loop.is_running() and threading.current_thread() is self._loop_thread:
            # The loop runs on this (main) thread: it cannot be blocked; drain on it, then chain.
            loop.call_soon_threadsafe(lambda: loop.create_task(self._drain_then_chain(signum)))
            return
        self._drain_from_another_thread()
        self._chain_sigterm(signum, frame)

    async def _drain_then_chain(self, signum: int) -> None:
        try:
            await asyncio.wait_for(self.drain(), DRAIN_ON_EXIT_TIMEOUT_S)
        finally:
            self._chain_sigterm(signum, None)

    def _chain_sigterm(self, signum: int, frame: Any) -> None:
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    # -- ledger ------------------------------------------------------------------------------

    async def open_pending(self, row: PendingRow) -> None:
        await (await self._ready()).open_pending(row)

    async def finalize(self, row: FinalRow) -> None:
        await (await self._ready()).finalize(row)

    async def record(self, row: FinalRow) -> None:
        await (await self._ready()).record(row)

    async def write_many(self, rows: Sequence[FinalRow]) -> list[BaseException | None]:
        """Final rows sent together by a replica (runtime.ledger_client): idempotent upserts,
        in one statement per kind, committed by the group writer; one failing fails only itself."""
        return await (await self._ready()).finalize_many(rows)

    async def open_many(self, rows: Sequence[PendingRow]) -> list[BaseException | None]:
        """Pending rows a replica journaled (runtime/finops/journal.py) without asking first:
        keys without budgets, or a dead replica's journal adopted. Each is committed unless its
        request_id is already here (its final row came first, or a retry)."""
        return await (await self._ready()).open_pending_many(rows)

    async def write_rows(self, pending: Sequence[PendingRow], finals: Sequence[FinalRow],
                         returns: Sequence[Return] = ()) -> tuple[list[BaseException | None], list[BaseException | None]]:
        """Journaled pending rows, final rows and returned allowances from one replica batch, in
        one transaction."""
        return await (await self._ready()).write_rows(pending, finals, returns)

    async def admit_many(
        self, requests: Sequence[tuple[PendingRow, Sequence[Budget]]]
    ) -> list[Admitted | BudgetExceeded | BaseException]:
        """Admissions sent together by a replica, each decided in submission order exactly as
        `admit_and_open_pending` would decide it alone."""
        store = await self._ready()  # once: then the submissions below queue in order, unawaited
        return list(await asyncio.gather(
            *(self._admit(store, row, budgets) for row, budgets in requests), return_exceptions=True
        ))

    async def recover(self, older_than_s: float) -> int:
        return await (await self._ready()).recover(older_than_s)

    async def spend(self, scope: Scope, since_wall: float) -> tuple[float, float]:
        return await (await self._ready()).spend(scope, since_wall)

    async def stats(self) -> WriterStats:
        return (await self._ready()).stats

    async def admit_and_open_pending(
        self, row: PendingRow, budgets: Sequence[Budget]
    ) -> Admitted | BudgetExceeded:
        return await self._admit(await self._ready(), row, budgets)

    async def _admit(
        self, store: LedgerStore, row: PendingRow, budgets: Sequence[Budget]
    ) -> Admitted | BudgetExceeded:
        """Decide one admission and observe the budgets it touched for alerts."""
        result = await store.admit_and_open_pending(row, budgets)
        self._observe(result, to_nusd(row.reserved_usd))
        return result

    async def grant_allowance(self, ask: AllowanceAsk, budgets: Sequence[Budget]) -> Granted | BudgetExceeded:
        """A replica's ask for an allowance of a key's budgets (runtime/finops/allowances.py);
        the budgets it touched are observed for alerts as for an admission of the grant."""
        result = await (await self._ready()).grant_allowance(ask, budgets)
        self._observe(result, result.granted_nusd if isinstance(result, Granted) else 0)
        return result

    async def return_allowances(self, returns: Sequence[Return]) -> None:
        await (await self._ready()).return_allowances(returns)

    def _observe(self, result: Admitted | Granted | BudgetExceeded, extra_nusd: int) -> None:
        refused = isinstance(result, BudgetExceeded)
        extra = 0 if refused else extra_nusd
        for usage in result.usage:
            hit = refused and usage.budget.name == result.name
            used = usage.used_nusd + extra
            for alert in self._alerts.observe(
                usage.budget.name, usage.period_start, used, usage.budget.limit_nusd, refused=hit
            ):
                self._notifier.emit(alert)

    async def budget_state(self, daily_budget_usd: float | None, name: str = "global:daily") -> BudgetState:
        """The global daily budget's state (pending rows at their reservation); alerts once
        per day at 90% and at 100%."""
        if daily_budget_usd is None:
            return "normal"
        day = utc_day_start(self._clock.time())
        spent, reserved = await self.spend(ALL, day)
        used = spent + reserved
        for alert in self._alerts.observe(name, day, to_nusd(used), to_nusd(daily_budget_usd)):
            self._notifier.emit(alert)
        return budget_state(used, daily_budget_usd)

    # -- tracked changes (visual editor) -------------------------------------------------------

    async def store_change(self, change: TrackedChange) -> None:
        await (await self._ready()).store_change(change)

    async def get_change(self, change_id: str) -> TrackedChange | None:
        return await (await self._ready()).get_change(change_id)

    async def update_change(self, change_id: str, status: str, result: dict[str, Any] | None = None,
                            expect_status: str | None = None) -> bool:
        return await (await self._ready()).update_change(change_id, status, result, expect_status)

    # -- reports -----------------------------------------------------------------------------

    async def summary(self, user_id: str | None = None, days: int = 30) -> Summary:
        return await (await self._ready()).reports.summary(user_id, days)

    async def by_user(self, user_id: str | None = None, days: int = 30) -> list[UserCost]:
        return await (await self._ready()).reports.by_user(user_id, days)

    async def by_agent(self, days: int = 30, user_id: str | None = None) -> list[AgentCost]:
        return await (await self._ready()).reports.by_agent(days, user_id)

    async def daily(self, days: int = 30, user_id: str | None = None) -> list[DayCost]:
        return await (await self._ready()).reports.daily(days, user_id)

    async def conversations(
        self, days: int = 7, limit: int = 10, user_id: str | None = None
    ) -> list[ConversationCost]:
        return await (await self._ready()).reports.conversations(days, limit, user_id)

    async def latency(self, model: str | None = None, days: int = 30, user_id: str | None = None) -> LatencyReport:
        return await (await self._ready()).reports.latency(model, days, user_id)

    # -- API keys ----------------------------------------------------------------------------

    async def create_key(
        self,
        user_id: str,
        *,
        agent: str | None = None,
        daily_budget_usd: float | None = None,
        monthly_budget_usd: float | None = None,
        rpm: int | None = None,
    ) -> NewKey:
        return await (await self._ready()).keys.create(
            user_id, agent=agent, daily_budget_usd=daily_budget_usd,
            monthly_budget_usd=monthly_budget_usd, rpm=rpm,
        )

    async def list_keys(self, user_id: str | None = None) -> list[KeyRecord]:
        return await (await self._ready()).keys.list(user_id)

    async def get_key(self, key_id: str) -> KeyRecord | None:
        return await (await self._ready()).keys.get(key_id)

    async def disable_key(self, key_id: str) -> bool:
        return await (await self._ready()).keys.disable(key_id)

    async def enable_key(self, key_id: str) -> bool:
        return await (await self._ready()).keys.enable(key_id)

    async def delete_key(self, key_id: str) -> bool:
        return await (await self._ready()).keys.delete(key_id)

    async def lookup_by_key(self, key: str) -> KeyRecord | None:
        return await (await self._ready()).keys.lookup_by_key(key)

