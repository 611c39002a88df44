"""The Coordinator: runs the agent pipelines for the HTTP layer.

`Pipelines` is the logic (plain async, no Ray): given a Gateway, a blackboard, the tracked
changes store and the agent registry, each method runs one pipeline and returns a reply —
`{"status": 200, "body": ...}`, or `{"status": 4xx/5xx, "error": {type, message, field, ...}}`
for an expected failure — plain data that crosses the actor boundary without pickling
exceptions. `CoordinatorActor` is the thin Ray shell: on first use it assembles its own Gateway
with runtime.wiring and holds the Blackboard and Ledger actor handles.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Awaitable, Mapping

from agents.agent_router import ENDPOINT as ROUTE_ENDPOINT, route_to_agents
from agents.code_review import ENDPOINT as REVIEW_ENDPOINT, Board, run_code_review
from agents.codegen import ENDPOINT as CODEGEN_ENDPOINT, generate_code
from agents.registry import Registry, default_registry
from agents.steps import PipelineError, RunContext, new_run_id
from agents.visual_delta import VisualChange
from agents.visual_editor import ChangeStore, capture_change, change_view, confirm_change, owned_change
from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.errors import BudgetRefusedError, LedgerUnavailableError
from runtime.core.gateway import Gateway
from providers.named_actor import named_actor_options

COORDINATOR_ACTOR_NAME = "coordinator"
BLACKBOARD_ACTOR_NAME = "blackboard"
VISUAL_EDITS_ENDPOINT = "/api/ai/visual-edits"

Reply = dict[str, Any]


def coordinator_actor_options(name: str = COORDINATOR_ACTOR_NAME, namespace: str | None = None) -> dict[str, Any]:
    """Ray options for the Coordinator (a pipeline run is never replayed)."""
    return named_actor_options(name, namespace)


class ActorMethods:
    """An actor handle seen as a plain async object: `await client.m(*a)` is
    `await handle.m.remote(*a)` (so pipelines take a store or an actor alike)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def __getattr__(self, name: str):
        method = getattr(self._handle, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await method.remote(*args, **kwargs)

        return call


def _body(value: Any) -> Any:
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _error(status: int, type_: str, message: str, field: str | None = None,
           extra: Mapping[str, Any] | None = None) -> Reply:
    error = {**(extra or {}), "type": type_, "message": message}
    if field is not None:
        error["field"] = field
    return {"status": status, "error": error}


def _refusal(exc: Exception) -> Reply | None:
    """A budget refusal or an unreachable ledger (the gateway refuses the call before sending
    anything upstream) as a reply; None for anything else."""
    if isinstance(exc, BudgetRefusedError):
        facts = {"budget": exc.budget, "limit_usd": exc.limit_usd, "spent_usd": exc.spent_usd,
                 "reserved_usd": exc.reserved_usd, "requested_usd": exc.requested_usd}
        return _error(402, "budget_exceeded", str(exc), extra={k: v for k, v in facts.items() if v is not None})
    if isinstance(exc, LedgerUnavailableError):
        return _error(503, "ledger_unavailable", "the cost ledger is unavailable; nothing was sent upstream; retry")
    return None


async def _reply(work: Awaitable[Any]) -> Reply:
    """The pipeline's result, or its expected failure, as plain data (exceptions are not
    always picklable across the actor boundary)."""
    try:
        return {"status": 200, "body": _body(await work)}
    except PipelineError as exc:
        return _error(exc.status, exc.type, exc.message, exc.field, exc.extra)
    except Exception as exc:
        reply = _refusal(exc)
        if reply is None:
            raise
        return reply


class Pipelines:
    """The pipelines over one gateway, blackboard, change store and registry."""

    def __init__(self, gateway: Gateway, board: Board, changes: ChangeStore,
                 registry: Registry | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self.gateway, self.board, self.changes = gateway, board, changes
        self.registry = registry or default_registry()
        self.clock = clock

    def _run(self, user_id: str, key_id: str | None, prefix: str, endpoint: str,
             budgets: tuple[Any, ...] = (), run_id: str | None = None) -> RunContext:
        return RunContext(user_id, key_id, run_id or new_run_id(prefix), endpoint, self.clock,
                          budgets=tuple(budgets))

    async def review(self, user_id: str, key_id: str | None, code: str, language: str | None = None,
                     budgets: tuple[Any, ...] = ()) -> Reply:
        run = self._run(user_id, key_id, "review", REVIEW_ENDPOINT, budgets)
        return await _reply(run_code_review(self.gateway, self.board, code, language, run))

    async def capture_visual_edit(self, user_id: str, key_id: str | None, change: Mapping[str, Any],
                                  budgets: tuple[Any, ...] = ()) -> Reply:
        run = self._run(user_id, key_id, "chg", VISUAL_EDITS_ENDPOINT, budgets)
        validated = VisualChange.model_validate(dict(change))
        return await _reply(capture_change(self.gateway, self.changes, self.registry, validated, run))

    async def confirm_visual_edit(self, user_id: str, key_id: str | None, is_admin: bool, change_id: str,
                                  note: str | None = None, source: str | None = None,
                                  framework: str = "react", budgets: tuple[Any, ...] = ()) -> Reply:
        run = self._run(user_id, key_id, "chg", f"{VISUAL_EDITS_ENDPOINT}/confirm", budgets, change_id)
        return await _reply(confirm_change(self.gateway, self.changes, self.board, change_id, run,
                                           is_admin=is_admin, note=note, source=source, framework=framework))

    async def get_visual_edit(self, user_id: str, is_admin: bool, change_id: str) -> Reply:
        async def view() -> dict[str, Any]:
            return change_view(await owned_change(self.changes, change_id, user_id, is_admin))

        return await _reply(view())

    async def route_agents(self, user_id: str, key_id: str | None, query: str,
                           context: Mapping[str, Any] | None = None, budgets: tuple[Any, ...] = ()) -> Reply:
        run = self._run(user_id, key_id, "route", ROUTE_ENDPOINT, budgets)
        return await _reply(route_to_agents(self.gateway, self.registry, query, context, run))

    async def generate_code(self, user_id: str, key_id: str | None, task: str, language: str,
                            context: str | None = None, current_code: str | None = None,
                            budgets: tuple[Any, ...] = ()) -> Reply:
        run = self._run(user_id, key_id, "gen", CODEGEN_ENDPOINT, budgets)
        return await _reply(generate_code(self.gateway, task, language, context, current_code, run))


class CoordinatorActor:
    """The named Coordinator actor (`ray.remote(CoordinatorActor).options(**coordinator_actor_options())`).

    It assembles its Gateway on first use (the provider and ledger actors must exist by then),
    so a restart only re-runs that assembly; its runs live in the ledger and the blackboard."""

    def __init__(self, boot: Any, blackboard_name: str = BLACKBOARD_ACTOR_NAME) -> None:
        self._boot = boot
        self._blackboard_name = blackboard_name
        self._building: asyncio.Task[Pipelines] | None = None

    async def _pipelines(self) -> Pipelines:
        if self._building is None or (self._building.done() and self._building.exception()):
            self._building = asyncio.get_running_loop().create_task(self._build())
        return await asyncio.shield(self._building)

    async def _build(self) -> Pipelines:
        import ray

        from runtime.config import load_config
        from runtime.wiring import build_gateway, lookup_actors

        config = load_config(self._boot.config_path)
        handles = await lookup_actors(config, self._boot.namespace)
        board = ray.get_actor(self._blackboard_name, namespace=self._boot.namespace)
        await board.__ray_ready__.remote()
        # build_gateway uses the ingress's ledger client: pending rows first, budget admission
        gateway = await build_gateway(config, self._boot, handles)
        return Pipelines(gateway, ActorMethods(board), ActorMethods(handles.ledger))

    async def ready(self) -> bool:
        """Assemble the gateway now (start-up calls this so the first request does not)."""
        await self._pipelines()
        return True

    async def _serve(self, pipeline: str, *args: Any, **kwargs: Any) -> Reply:
        """Run one pipeline call; its ledger rows are sent before the reply (the ledger client
        batches rows nobody awaits: a run's rows are in the ledger when its answer is)."""
        pipelines = await self._pipelines()
        try:
            return await getattr(pipelines, pipeline)(*args, **kwargs)
        finally:
            flush = getattr(pipelines.gateway.ledger, "flush", None)
            if flush is not None:
                await flush()

    async def review(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("review", *args, **kwargs)

    async def capture_visual_edit(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("capture_visual_edit", *args, **kwargs)

    async def confirm_visual_edit(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("confirm_visual_edit", *args, **kwargs)

    async def get_visual_edit(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("get_visual_edit", *args, **kwargs)

    async def route_agents(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("route_agents", *args, **kwargs)

    async def generate_code(self, *args: Any, **kwargs: Any) -> Reply:
        return await self._serve("generate_code", *args, **kwargs)


async def lookup_coordinator(namespace: str) -> Any:
    """The named Coordinator actor of this app, or None when it was not started."""
    import ray

    try:
        handle = ray.get_actor(COORDINATOR_ACTOR_NAME, namespace=namespace)
    except ValueError:
        return None
    await handle.__ray_ready__.remote()
    return handle
