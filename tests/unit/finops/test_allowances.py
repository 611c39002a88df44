"""Spending allowances (budget leases): the replica's book, the ledger's accounting of grants,
draws and returns, and the guarantee under any interleaving: a key's budget is never overspent
and, once every allowance is returned, nothing stays reserved."""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from runtime.finops.allowances import (
    MAX_SHARE_OF_ROOM, AllowanceAsk, AllowanceBook, Granted, Return, grant_amount,
)
from runtime.finops.budget import ALL, Budget, BudgetExceeded, BudgetUsage, Scope, to_nusd
from runtime.finops.ledger_store import FinalRow, LedgerStore, PendingRow

NEW_YEAR_2026 = 1_767_225_600.0
KEY = ("key_a", "alice")
BUDGET = Budget("key:key_a:day", 1.0, "day", Scope.key("key_a"))


def granted(book: AllowanceBook, nusd: int, now: float = NEW_YEAR_2026, reserved: int = 10) -> str:
    ask = book.ask(KEY, "alice", "key_a", reserved, now)
    book.install(KEY, ask, Granted(ask.allowance_id, nusd))
    return ask.allowance_id


# ------------------------------------------------------------------------- the replica's book


def test_requests_draw_from_the_grant_and_a_request_that_does_not_fit_retires_it():
    book = AllowanceBook()
    assert book.admit(KEY, "r0", 10, NEW_YEAR_2026) == (None, [])  # nothing held: ask first
    first = granted(book, 100)
    assert book.admit(KEY, "r1", 60, NEW_YEAR_2026)[0] == first
    assert book.admit(KEY, "r2", 50, NEW_YEAR_2026) == (None, [])  # 60 + 50 > 100: retired, r1 in flight
    assert book.draining == 1
    assert book.settle("r1", 25) == (first, [Return(first, 25)])  # drained: returned at what r1 cost
    assert book.draining == 0


def test_an_allowance_is_retired_at_its_term_and_at_the_end_of_its_utc_day():
    book = AllowanceBook(term_s=5.0)
    first = granted(book, 1_000, now=NEW_YEAR_2026 + 86_400 - 2)
    ask = book.ask(KEY, "alice", "key_a", 10, NEW_YEAR_2026 + 86_400 - 2)
    assert ask.expires_at == NEW_YEAR_2026 + 86_400  # the day ends before the term does
    assert book.admit(KEY, "r1", 10, NEW_YEAR_2026 + 86_400 - 1)[0] == first
    assert book.admit(KEY, "r2", 10, NEW_YEAR_2026 + 86_400)[0] is None  # the next day: a new grant
    second = granted(book, 1_000, now=NEW_YEAR_2026 + 86_400)
    assert book.retire_expired(NEW_YEAR_2026 + 86_400 + 4.9) == []
    assert book.retire_expired(NEW_YEAR_2026 + 86_400 + 5.0) == [Return(second, 0)]
    assert book.settle("r1", 7) == (first, [Return(first, 7)])


def test_a_request_that_never_settles_is_settled_at_its_reservation_once_stale():
    book = AllowanceBook(term_s=5.0, stale_after_s=180.0)
    first = granted(book, 1_000)
    book.admit(KEY, "cancelled", 40, NEW_YEAR_2026)
    book.admit(KEY, "done", 30, NEW_YEAR_2026 + 1)
    assert book.retire_expired(NEW_YEAR_2026 + 10) == []  # retired, but "cancelled" is in flight
    assert book.settle("done", 10) == (first, [])
    assert book.retire_expired(NEW_YEAR_2026 + 180) == [Return(first, 50)]  # as the ledger's recovery charges it
    assert book.settle("cancelled", 1) == (None, [])


def test_the_next_ask_follows_how_fast_the_last_allowance_was_drawn():
    book = AllowanceBook(term_s=5.0)
    assert book.ask(KEY, "alice", "key_a", 10, NEW_YEAR_2026).want_nusd == 160  # 16 requests' worth
    granted(book, 5_000)
    for i in range(50):
        book.admit(KEY, f"r{i}", 100, NEW_YEAR_2026 + 0.5)
    assert book.admit(KEY, "r50", 100, NEW_YEAR_2026 + 0.5)[0] is None  # used up in half a second
    assert book.ask(KEY, "alice", "key_a", 10, NEW_YEAR_2026 + 0.5).want_nusd == 50_000  # 10,000/s for 5 s
    idle = granted(book, 1_000, now=NEW_YEAR_2026 + 0.5)
    assert book.retire_expired(NEW_YEAR_2026 + 5.5) == [Return(idle, 0)]
    assert book.ask(KEY, "alice", "key_a", 10, NEW_YEAR_2026 + 5.5).want_nusd == 160  # an idle term: back to 16


def test_a_settle_for_a_request_admitted_elsewhere_changes_nothing():
    book = AllowanceBook()
    granted(book, 100)
    assert book.settle("not-here", 5) == (None, [])
    assert book.retire_all()[0].used_nusd == 0


def _usage(limit_usd: float, used_nusd: int) -> BudgetUsage:
    return BudgetUsage(Budget("b", limit_usd, "day"), NEW_YEAR_2026, used_nusd, 0)


def test_the_ledger_grants_what_is_wanted_within_its_share_of_the_room_never_less_than_needed():
    room = to_nusd(1.0) - 400
    assert grant_amount([_usage(1.0, 400)], 10, 100) == 100
    assert grant_amount([_usage(1.0, 400)], 10, 10**12) == int(room * MAX_SHARE_OF_ROOM)
    assert grant_amount([_usage(1.0, to_nusd(1.0) - 10)], 10, 100) == 10  # exactly what is needed fits
    assert grant_amount([_usage(1.0, to_nusd(1.0) - 9)], 10, 100) is None
    assert grant_amount([_usage(1.0, 0), _usage(0.5, 0)], 10, 10**12) == int(to_nusd(0.5) * MAX_SHARE_OF_ROOM)


# ------------------------------------------------------------------------- the ledger's accounting


def _ask(allowance_id: str, least: int, want: int, at: float = NEW_YEAR_2026 + 60) -> AllowanceAsk:
    return AllowanceAsk(allowance_id, "alice", "key_a", at, at + 5, least, want)


def _pending(rid: str, reserved_usd: float, allowance_id: str | None) -> PendingRow:
    return PendingRow(request_id=rid, user_id="alice", key_id="key_a", created_at=NEW_YEAR_2026 + 61,
                      reserved_usd=reserved_usd, allowance_id=allowance_id)


def _final(rid: str, reserved_usd: float, cost_usd: float, allowance_id: str | None) -> FinalRow:
    return FinalRow(request_id=rid, user_id="alice", key_id="key_a", created_at=NEW_YEAR_2026 + 61,
                    reserved_usd=reserved_usd, cost_usd=cost_usd, allowance_id=allowance_id)


async def _counted(store: LedgerStore, scope: Scope = Scope.key("key_a")) -> tuple[float, float]:
    return await store.spend(scope, NEW_YEAR_2026)


async def test_a_grant_is_reserved_drawn_by_its_rows_and_released_to_their_cost_on_return(store):
    grant = await store.grant_allowance(_ask("alw_1", to_nusd(0.01), to_nusd(0.1)), [BUDGET])
    assert isinstance(grant, Granted) and grant.granted_nusd == to_nusd(0.1)
    for scope in (Scope.key("key_a"), Scope.user("alice"), ALL):
        assert await _counted(store, scope) == (0.0, pytest.approx(0.1))
    await store.open_pending_many([_pending("r1", 0.01, "alw_1"), _pending("r2", 0.01, "alw_1")])
    assert await _counted(store) == (0.0, pytest.approx(0.1))  # drawn from the grant, not added to it
    await store.finalize_many([_final("r1", 0.01, 0.004, None)])  # a final row keeps its allowance
    assert await _counted(store) == (pytest.approx(0.004), pytest.approx(0.096))
    # a replica returns an allowance once nothing under it is in flight, with what its rows came to
    await store.write_rows([], [_final("r2", 0.01, 0.002, "alw_1")], [Return("alw_1", to_nusd(0.006))])
    assert await _counted(store) == (pytest.approx(0.006), 0.0)
    await store.return_allowances([Return("alw_1", 1)])  # a second return changes nothing
    assert await _counted(store) == (pytest.approx(0.006), 0.0)


async def test_rows_arriving_after_the_return_are_covered_until_they_come(store):
    await store.grant_allowance(_ask("alw_1", 10, to_nusd(0.1)), [BUDGET])
    await store.return_allowances([Return("alw_1", to_nusd(0.03))])  # its rows are still on their way
    assert await _counted(store) == (0.0, pytest.approx(0.03))
    await store.finalize_many([_final("r1", 0.02, 0.03, "alw_1")])
    assert await _counted(store) == (pytest.approx(0.03), 0.0)


async def test_a_grant_is_refused_when_the_budget_lacks_what_the_request_needs_and_a_retry_is_the_same_grant(store):
    first = await store.grant_allowance(_ask("alw_1", to_nusd(0.5), to_nusd(0.6)), [BUDGET])
    assert first.granted_nusd == to_nusd(0.5)  # half the room: other replicas find some
    again = await store.grant_allowance(_ask("alw_1", to_nusd(0.5), to_nusd(0.6)), [BUDGET])
    assert again.granted_nusd == first.granted_nusd
    assert (await _counted(store))[1] == pytest.approx(0.5)
    refused = await store.grant_allowance(_ask("alw_2", to_nusd(0.6), to_nusd(0.6)), [BUDGET])
    assert isinstance(refused, BudgetExceeded) and refused.name == BUDGET.name
    assert refused.reserved == pytest.approx(0.5)


async def test_what_an_allowance_holds_counts_on_its_day_for_key_user_and_all_only(store):
    await store.grant_allowance(_ask("alw_1", 10, to_nusd(0.1)), [BUDGET])  # on 2026-01-01
    assert await store.spend(Scope.key("key_a"), NEW_YEAR_2026 + 86_400) == (0.0, 0.0)  # the next day's
    assert (await store.spend(Scope.user("alice"), NEW_YEAR_2026))[1] == pytest.approx(0.1)  # a month's, too
    assert await store.spend(Scope.key("key_b"), NEW_YEAR_2026) == (0.0, 0.0)
    assert await store.spend(Scope.user("bob"), NEW_YEAR_2026) == (0.0, 0.0)


async def test_a_budget_that_does_not_cover_the_key_is_refused_loudly(store):
    with pytest.raises(ValueError, match="does not cover"):
        await store.grant_allowance(_ask("alw_1", 1, 1), [Budget("b", 1.0, "day", Scope.key("key_b"))])


# ------------------------------------------------------------------------- any interleaving

LIMIT_NUSD = 1_000_000  # $0.001: a few dozen requests


@st.composite
def scenarios(draw):
    return draw(st.lists(st.one_of(
        st.tuples(st.just("request"), st.integers(0, 2), st.integers(1, 300_000)),
        st.tuples(st.just("finish"), st.integers(0, 2), st.floats(0.0, 1.0)),
        st.tuples(st.just("send"), st.integers(0, 2), st.integers(0, 50)),
        st.tuples(st.just("tick"), st.floats(0.0, 4.0)),
        st.tuples(st.just("crash"), st.integers(0, 2)),
    ), min_size=5, max_size=60))


class Replica:
    """A replica's book, its calls in flight, and what it has not sent the ledger yet (rows and
    returns reach the ledger later, in any order: held rows, batches, retries)."""

    def __init__(self) -> None:
        self.book = AllowanceBook(term_s=3.0)
        self.in_flight: dict[str, tuple[int, str]] = {}
        self.outbox: list[PendingRow | FinalRow | Return] = []
        self.finished_nusd = 0  # what its finished calls cost


def _row(kind, rid: str, reserved: int, allowance_id: str, now: float, cost: int | None = None):
    common = dict(request_id=rid, user_id="alice", key_id="key_a", created_at=now,
                  reserved_usd=reserved / 1e9, allowance_id=allowance_id)
    return kind(**common) if cost is None else kind(**common, cost_usd=cost / 1e9)


async def _deliver(store: LedgerStore, item) -> None:
    if isinstance(item, Return):
        await store.return_allowances([item])
    elif isinstance(item, FinalRow):
        await store.finalize_many([item])
    else:
        await store.open_pending_many([item])


async def _play(store: LedgerStore, steps) -> None:
    replicas = [Replica() for _ in range(3)]
    gone_nusd = 0  # committed by replicas that died: their calls' reservations (settled `unknown`)
    dead: set[str] = set()  # allowances of dead replicas: never returned
    now, n = NEW_YEAR_2026 + 60, 0
    budget = Budget("key:key_a:day", LIMIT_NUSD / 1e9, "day", Scope.key("key_a"))
    for step in steps:
        if step[0] == "request":
            replica, reserved = replicas[step[1]], step[2]
            n += 1
            rid = f"r{n}"
            allowance_id, returns = replica.book.admit(KEY, rid, reserved, now)
            replica.outbox += returns
            if allowance_id is None:
                ask = replica.book.ask(KEY, "alice", "key_a", reserved, now)
                result = await store.grant_allowance(ask, [budget])  # awaited: the one hop
                if isinstance(result, BudgetExceeded):
                    continue
                replica.outbox += replica.book.install(KEY, ask, result)
                allowance_id, returns = replica.book.admit(KEY, rid, reserved, now)
                replica.outbox += returns
                assert allowance_id is not None
            replica.outbox.append(_row(PendingRow, rid, reserved, allowance_id, now))
            replica.in_flight[rid] = (reserved, allowance_id)
        elif step[0] == "finish":
            replica = replicas[step[1]]
            if not replica.in_flight:
                continue
            rid, (reserved, allowance_id) = next(iter(replica.in_flight.items()))
            del replica.in_flight[rid]
            cost = int(reserved * step[2])
            replica.finished_nusd += cost
            _, returns = replica.book.settle(rid, cost)
            replica.outbox += [_row(FinalRow, rid, reserved, allowance_id, now, cost), *returns]
        elif step[0] == "send":
            replica = replicas[step[1]]
            if replica.outbox:
                await _deliver(store, replica.outbox.pop(step[2] % len(replica.outbox)))
        elif step[0] == "tick":
            now += step[1]
            for replica in replicas:
                replica.outbox += replica.book.retire_expired(now)
        else:  # a replica dies: its journal's pending rows are adopted, the rest of its outbox is lost
            replica = replicas[step[1]]
            for item in replica.outbox:
                if isinstance(item, PendingRow):
                    await _deliver(store, item)
            gone_nusd += replica.finished_nusd + sum(r for r, _ in replica.in_flight.values())
            dead |= {a.allowance_id for a in replica.book.open.values()} | set(replica.book._draining)
            dead |= {item.allowance_id for item in replica.outbox if isinstance(item, Return)}  # lost
            replicas[step[1]] = Replica()
        spent, reserved_usd = await store.spend(Scope.key("key_a"), NEW_YEAR_2026)
        counted = to_nusd(spent) + to_nusd(reserved_usd)
        committed = gone_nusd + sum(r.finished_nusd + sum(x for x, _ in r.in_flight.values()) for r in replicas)
        assert counted <= LIMIT_NUSD  # the budget is never passed
        assert counted >= committed  # and the ledger never counts less than the replicas spend
    for replica in replicas:  # the live replicas finish, give back and send everything
        for rid, (reserved, allowance_id) in list(replica.in_flight.items()):
            _, returns = replica.book.settle(rid, reserved)
            replica.outbox += [_row(FinalRow, rid, reserved, allowance_id, now, reserved), *returns]
        for item in replica.outbox + replica.book.retire_all():
            await _deliver(store, item)
    leftover = await store.read(lambda db: _reserved_by_live(db, dead))
    assert leftover == 0  # nothing a live replica gave back stays reserved


async def _reserved_by_live(db, dead: set[str]) -> int:
    cursor = await db.execute("SELECT allowance_id, MAX(granted - drawn, 0) FROM allowances")
    return sum(left for allowance_id, left in await cursor.fetchall() if allowance_id not in dead)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenarios())
def test_any_interleaving_of_grants_draws_returns_expiries_and_crashes_keeps_the_budget(tmp_path_factory, steps):
    path = str(tmp_path_factory.mktemp("allowances") / "ledger.sqlite3")

    async def run():
        async with LedgerStore(path, synchronous="NORMAL") as store:
            await _play(store, steps)

    asyncio.run(run())


# ------------------------------------------------------------------------- the replica's ledger client


class ActorShim:
    """The Ledger actor's methods as a replica calls them (`handle.method.remote(...)`), on the
    plain class, counting calls by method."""

    def __init__(self, actor) -> None:
        self.actor = actor
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str):
        method = getattr(self.actor, name)
        shim = self

        class Remote:
            @staticmethod
            def remote(*args, **kwargs):
                shim.calls[name] = shim.calls.get(name, 0) + 1
                return method(*args, **kwargs)

        return Remote


async def test_concurrent_requests_of_a_budgeted_key_are_admitted_by_allowances_and_never_overspend(tmp_path):
    from runtime.finops.journal import Journal
    from runtime.finops.ledger import LedgerActor
    from runtime.finops.ledger_client import RayLedgerClient

    actor = LedgerActor(str(tmp_path / "ledger.sqlite3"))
    handle = ActorShim(actor)
    client = RayLedgerClient(handle, journal=Journal(tmp_path / "journal", "replica-a"), timeout_s=5, attempts=1,
                             allowances=AllowanceBook())
    budget = Budget("key:key_a:daily", 0.01, "day", Scope.key("key_a"))
    at = NEW_YEAR_2026 + 60

    async def one(i: int):
        reserved = 0.0004 + 0.0001 * (i % 7)  # reservations differ: a refused ask can be bigger than mine
        row = PendingRow(request_id=f"r{i}", user_id="alice", key_id="key_a", created_at=at, reserved_usd=reserved)
        result = await client.admit_and_open_pending(row, [budget])
        if isinstance(result, BudgetExceeded):
            return None
        await asyncio.sleep(0)
        await client.finalize(FinalRow(request_id=f"r{i}", user_id="alice", key_id="key_a", created_at=at,
                                       reserved_usd=reserved, cost_usd=reserved / 2))
        return reserved / 2

    costs = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(100))), 30)
    admitted = [c for c in costs if c is not None]
    assert 0 < len(admitted) < 100
    assert handle.calls.get("admit_many", 0) == 0 and handle.calls["grant_allowance"] < len(admitted)
    await client.close()
    store = await actor._ready()
    spent, reserved = await store.spend(Scope.key("key_a"), at)
    assert reserved == 0.0 and spent == pytest.approx(sum(admitted)) and spent <= 0.01
    await actor.close()


def test_a_finished_ask_for_more_than_a_request_needs_is_not_awaited_again(tmp_path):
    """A refused ask found still registered (its clean-up not run yet) must not be awaited in a
    loop (awaiting a done future never yields: the replica's event loop would spin): the request
    asks for what it needs itself."""
    import threading

    from runtime.finops.journal import Journal
    from runtime.finops.ledger import LedgerActor
    from runtime.finops.ledger_client import RayLedgerClient

    budget = Budget("key:key_a:daily", 0.01, "day", Scope.key("key_a"))
    outcome: list[object] = []

    async def run():
        actor = LedgerActor(str(tmp_path / "ledger.sqlite3"))
        client = RayLedgerClient(ActorShim(actor), journal=Journal(tmp_path / "journal", "replica-a"),
                                 timeout_s=5, attempts=1, allowances=AllowanceBook())
        stale = asyncio.get_running_loop().create_future()
        stale.set_result((BudgetExceeded("key:key_a:daily", 0.01, 0.0, 0.0, 0.02, "day"), to_nusd(0.02)))
        client._granting[("key_a", "alice", (budget,))] = stale
        row = PendingRow(request_id="r1", user_id="alice", key_id="key_a", created_at=NEW_YEAR_2026 + 60,
                         reserved_usd=0.001)
        outcome.append(await client.admit_and_open_pending(row, [budget]))
        await client.close()
        await actor.close()

    thread = threading.Thread(target=asyncio.run, args=(run(),), daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "the admission spun on a finished ask"
    assert outcome and not isinstance(outcome[0], BudgetExceeded)
