"""How a replica reaches the platforms: `LeasedProviderPool` (the default) calls each upstream
from this process under slices of the limits lent by the platform's ProviderActor
(providers/lease_holder.py), with one aiohttp pool per platform; `RayProviderPool` sends every
call through the actor (`protection.leases: false`)."""
from __future__ import annotations

import asyncio
from typing import Any

import ray
import structlog

from providers.caller import PlatformCaller
from providers.clock import SYSTEM_CLOCK, Clock
from providers.lease_holder import Renewer
from providers.leased_platform import leased_platform
from providers.leases import Renewal, RenewalAnswer, holder_name
from providers.settings import PlatformSettings
from providers.types import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    Refusal,
    StreamCutError,
    UpstreamConnectionError,
)
from providers.wire.ratelimit import RateLimitInfo

log = structlog.get_logger("switchboard.leases")

#: an actor call on the lease path that takes longer than this counts as unanswered
RENEW_TIMEOUT_S = 2.0


class RayProviderPool:
    def __init__(self, handles: dict[str, Any]) -> None:
        self._handles = handles

    async def complete(
        self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        try:
            return await self._handles[platform].complete.remote(request, deadline, wait, retry)
        except ray.exceptions.RayActorError:
            return UpstreamConnectionError(
                f"provider actor for {platform} is restarting", platform=platform, model=request.model
            )

    async def stream(self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False):
        """Relay the actor's streaming generator (one object per event)."""
        refs = self._handles[platform].stream.options(num_returns="streaming").remote(request, deadline, wait)
        finished = False
        try:
            async for ref in refs:
                yield await ref
            finished = True
        except ray.exceptions.RayActorError:
            yield StreamCutError(f"provider actor for {platform} died", platform=platform, model=request.model)
            finished = True
        finally:
            if not finished:  # the client went away: stop the upstream call too
                ray.cancel(refs)

    async def close(self) -> None:
        pass


class ActorDesk:
    """The lease path's calls to one ProviderActor, each bounded by a timeout."""

    def __init__(self, handle: Any, timeout_s: float = RENEW_TIMEOUT_S) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    async def renew(self, renewal: Renewal) -> RenewalAnswer:
        return await asyncio.wait_for(self._handle.renew.remote(renewal), self._timeout_s)

    async def admit(self, model: str, tokens: int, deadline_wall: float, wait: bool) -> int | Refusal:
        return await self._handle.admit_one.remote(model, tokens, deadline_wall, wait)

    async def settle(self, admission_id: int, outcome: str, used_tokens: int | None,
                     headers: RateLimitInfo | None, cool_for_s: float | None) -> None:
        await asyncio.wait_for(
            self._handle.settle_one.remote(admission_id, outcome, used_tokens, headers, cool_for_s), self._timeout_s)


class LeasedProviderPool:
    """One `PlatformCaller` per platform over leased guards, and the renewals' background tick."""

    def __init__(self, callers: dict[str, PlatformCaller], renewers: dict[str, Renewer], clock: Clock) -> None:
        self.callers = callers
        self.renewers = renewers
        self._clock = clock
        self._tick_s = min(r.term_hint_s for r in renewers.values()) / 2 if renewers else 0.5
        self._ticker: asyncio.Task | None = None

    @classmethod
    async def open(cls, settings: dict[str, PlatformSettings], handles: dict[str, Any],
                   clock: Clock = SYSTEM_CLOCK) -> "LeasedProviderPool":
        holder = holder_name()
        answers = await asyncio.gather(*(handles[p].lease_settings.remote() for p in settings))
        callers, renewers = {}, {}
        for (platform, s), answer in zip(settings.items(), answers):
            leased = leased_platform(holder, s, answer, ActorDesk(handles[platform]), clock,
                                     on_error=_renew_failed(platform))
            callers[platform], renewers[platform] = leased.caller, leased.renewer
        pool = cls(callers, renewers, clock)
        pool.start()
        return pool

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await self._clock.sleep(self._tick_s)
            for renewer in self.renewers.values():
                try:
                    await renewer.tick()
                except Exception:  # noqa: BLE001 - never let the ticker die
                    log.exception("leases.tick_failed")

    async def complete(
        self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        return await self.callers[platform].complete(request, deadline, wait, retry)

    async def stream(self, platform: str, request: ChatRequest, deadline: float, *, wait: bool = False):
        async for item in self.callers[platform].stream(request, deadline, wait):
            yield item

    async def close(self) -> None:
        """Give every slice back and close the upstream pools."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        await asyncio.gather(*(r.close() for r in self.renewers.values()), return_exceptions=True)
        for caller in self.callers.values():
            client = getattr(caller.transport, "_client", None)
            if client is not None:
                await client.aclose()


def _renew_failed(platform: str):  # type: ignore[no-untyped-def]
    def log_it(exc: BaseException) -> None:
        log.warning("leases.renew_failed", platform=platform, error=type(exc).__name__)

    return log_it
