"""The Blackboard Ray actor: a thin async shell around one store.

With `redis_url` the sessions live in Redis, so they survive an actor restart and every actor
in the cluster sees the same sessions; without it they live in the actor's memory and a restart
loses them. Writes and clears are never retried by Ray (at-most-once); reads are idempotent and
retried until the restarted actor answers (a small fixed count runs out while the new worker
process starts), so callers bound them with their own `ray.get(..., timeout=...)`.
"""
from __future__ import annotations

from typing import Any

import ray

from blackboard.models import Entry, EntryFields, Limits
from blackboard.store import RedisStore, make_store
from providers.clock import SYSTEM_CLOCK, Clock
from providers.named_actor import named_actor_options

READ_RETRIES = -1  # until the restarted actor answers


def blackboard_actor_options(name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    """Ray options for the Blackboard actor (pass to `BlackboardActor.options(...)`); not
    detached unless the caller says so (tests create throwaway boards)."""
    return named_actor_options(name, namespace, lifetime=None, max_concurrency=None)


@ray.remote
class BlackboardActor:
    def __init__(
        self,
        redis_url: str | None = None,
        namespace: str = "default",
        clock: Clock | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store = make_store(
            redis_url,
            namespace=namespace,
            clock=clock or SYSTEM_CLOCK,
            limits=limits or Limits(),
        )

    @ray.method(max_task_retries=0)
    async def write(self, session_id: str, fields: EntryFields) -> Entry:
        return await self._store.write(session_id, fields)

    @ray.method(max_task_retries=READ_RETRIES)
    async def read_all(self, session_id: str) -> list[Entry]:
        return await self._store.read_all(session_id)

    @ray.method(max_task_retries=READ_RETRIES)
    async def read(
        self,
        session_id: str,
        agent: str | None = None,
        role: str | None = None,
        platform: str | None = None,
    ) -> list[Entry]:
        return await self._store.read(session_id, agent=agent, role=role, platform=platform)

    @ray.method(max_task_retries=0)
    async def clear(self, session_id: str) -> int:
        return await self._store.clear(session_id)

    @ray.method(max_task_retries=READ_RETRIES)
    async def sessions(self) -> list[str]:
        return await self._store.sessions()

    @ray.method(max_task_retries=READ_RETRIES)
    async def backend(self) -> str:
        """Which store this actor uses: `redis` or `memory`."""
        return "redis" if isinstance(self._store, RedisStore) else "memory"
