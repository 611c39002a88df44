"""ProviderActor: one named async Ray actor per platform. It owns the platform's per-model limits
and breakers (providers/guard.py), the key's state, and the retry budget.

Two ways to call a platform, one call loop (providers/caller.py):
- by lease (the default, the hot path): a Serve replica holds slices of each model's limits,
  lent here (`renew`, providers/leases.py), admits locally and calls the upstream itself; what
  cannot be lent (a half-open breaker's single probe, in-flight limits) is admitted here one
  call at a time (`admit_one` / `settle_one`);
- through the actor (`complete` / `stream`): admission and the upstream call both here.
"""
from __future__ import annotations

import os
from typing import Any

from providers.breaker import BreakerConfig
from providers.caller import PlatformCaller, bind_request
from providers.catalog import ModelSpec
from providers.clock import SYSTEM_CLOCK, Clock
from providers.endpoints import SIMULATOR_KEY
from providers.guard import Admission, ModelGuard
from providers.leases import LeaseDesk, Renewal, RenewalAnswer, lease_ids
from providers.secret import Secret
from providers.settings import PlatformSettings
from providers.tokens import warm_up
from providers.transport import Transport, new_http_client
from providers.types import BadRequestError, ChatRequest, ChatResponse, ProviderError, Refusal
from providers.wire.base import Endpoint
from providers.wire.ratelimit import RateLimitInfo
from providers.named_actor import HIGH_RATE, named_actor_options

__all__ = ["ProviderActor", "bind_request", "lease_term_s", "provider_actor_name", "provider_actor_options"]

#: a remote admission never settled (its holder died) is released this long after its deadline
REMOTE_GRACE_S = 30.0


def provider_actor_name(platform: str) -> str:
    return f"provider:{platform}"


def provider_actor_options(platform: str, namespace: str) -> dict[str, Any]:
    return named_actor_options(provider_actor_name(platform), namespace, **HIGH_RATE)


def _was_restarted() -> bool:
    try:
        import ray

        return ray.get_runtime_context().was_current_actor_reconstructed
    except Exception:  # not inside a Ray actor (unit tests)
        return False


def lease_term_s(window_s: float, configured_s: float) -> float:
    """A slice's term: short against the window, so little capacity idles in leases."""
    return max(0.01, min(configured_s, window_s * 0.05))


class ProviderActor:
    """Plain class; `ray.remote(ProviderActor).options(**provider_actor_options(...))` makes the
    actor. Usable without Ray in tests."""

    def __init__(
        self,
        settings: PlatformSettings,
        base_url: str,
        simulated: bool = False,
        clock: Clock = SYSTEM_CLOCK,
        restarted: bool | None = None,
        api_key: Secret | None = None,
    ) -> None:
        platform, entry = settings.platform, settings.entry
        # The key comes masked from the driver, or from the actor's own environment; it leaves
        # this object only as a Secret, to replicas that call the upstream (`credentials`).
        if simulated:
            api_key_value = SIMULATOR_KEY
        elif api_key is not None:
            api_key_value = api_key.reveal()
        else:
            api_key_value = os.environ.get(entry.api_key_env, "")
        self.platform = platform
        self.simulated = simulated
        self.endpoint = Endpoint(platform, entry.protocol, base_url, api_key_value, entry.timeout_s, entry.connect_timeout_s)
        self._clock = clock
        p = settings.protection
        settle = p.settle_on_restart and (_was_restarted() if restarted is None else restarted)
        breaker = BreakerConfig(**p.breaker.model_dump())
        self.models: dict[str, ModelSpec] = {m.id: m for m in settings.models}
        self.guards = {
            m.id: ModelGuard(m, clock, window_scale=p.window_scale, guard_s=p.guard_s, breaker=breaker, settle=settle)
            for m in self.models.values()
        }
        self.term_s = lease_term_s(60.0 * p.window_scale, p.lease_term_s)
        self.desks = {model_id: LeaseDesk(guard, clock, self.term_s) for model_id, guard in self.guards.items()}
        self.caller = PlatformCaller.for_settings(
            settings, lambda spec: self.guards[spec.id], Transport(self.endpoint, new_http_client()), clock=clock)
        self._remote: dict[int, tuple[ModelGuard, Admission, float]] = {}  # id -> (guard, admission, expiry)
        self._remote_ids = lease_ids()
        self.settled_on_start = settle
        warm_up()

    async def ready(self) -> dict[str, Any]:
        return {"platform": self.platform, "simulated": self.simulated}

    @property
    def disabled(self) -> ProviderError | None:
        return self.caller.disabled

    # -- calls through the actor ---------------------------------------------------------------

    async def complete(
        self, request: ChatRequest, deadline: float, wait: bool = False, retry: bool = True
    ) -> ChatResponse | ProviderError:
        """Admit, call, retry and reconcile here (see PlatformCaller.complete)."""
        return await self.caller.complete(request, deadline, wait, retry)

    async def stream(self, request: ChatRequest, deadline: float, wait: bool = False, idle_timeout_s: float = 30.0):
        async for item in self.caller.stream(request, deadline, wait, idle_timeout_s):
            yield item

    # -- leases (the replicas' side: providers/lease_holder.py) ---------------------------------

    async def lease_settings(self) -> dict[str, Any]:
        """What a replica needs to call this platform itself: the endpoint (its key as a Secret,
        never logged), the lease term and the retry settings are the replica's own config."""
        e = self.endpoint
        return {"base_url": e.base_url, "api_key": Secret(e.api_key), "term_s": self.term_s,
                "disabled": self.caller.disabled}

    async def renew(self, renewal: Renewal) -> RenewalAnswer:
        """One holder's batch: slices back with their usage, outcomes, headers and cool-downs
        learned, the next slices lent; a key failure it saw disables the key here."""
        caller = self.caller
        if renewal.disabled is not None and caller.disabled is None:
            caller.disable(renewal.disabled)
        for name, delta in renewal.counters:
            caller.counters[name] = caller.counters.get(name, 0) + delta
        grants = tuple(self.desks[r.model].apply(renewal.holder, r) for r in renewal.reports if r.model in self.desks)
        self._release_lost(self._clock.monotonic())
        return RenewalAnswer(grants, caller.disabled)

    async def admit_one(self, model: str, tokens: int, deadline: float, wait: bool = False) -> int | Refusal:
        """One call's admission (a breaker probe, or a model with an in-flight limit): an id to
        settle with `settle_one`, or a refusal."""
        guard = self.guards[model]
        admission = await guard.admit(tokens, deadline, wait=wait)
        if isinstance(admission, Refusal):
            return admission
        admission_id = next(self._remote_ids)
        expiry = self._clock.monotonic() + max(deadline - self._clock.time(), 0.0) + REMOTE_GRACE_S
        self._remote[admission_id] = (guard, admission, expiry)
        return admission_id

    async def settle_one(self, admission_id: int, outcome: str, used_tokens: int | None,
                         headers: RateLimitInfo | None, cool_for_s: float | None) -> None:
        entry = self._remote.pop(admission_id, None)
        if entry is None:
            return
        guard, admission, _ = entry
        if outcome == "abandoned":
            guard.abandoned(admission)
        else:
            guard.finish(admission, outcome, used_tokens, headers, cool_for_s)  # type: ignore[arg-type]

    def _release_lost(self, now: float) -> None:
        """Admissions whose holder never settled them: the charge stays, the slot comes back."""
        for admission_id in [i for i, (_, _, expiry) in self._remote.items() if expiry < now]:
            guard, admission, _ = self._remote.pop(admission_id)
            guard.failed(admission, BadRequestError("never settled", platform=self.platform, model=guard.spec.id))

    # -- operations --------------------------------------------------------------------------

    async def enable(self) -> bool:
        """Re-enable a key disabled after an authentication or out-of-credit error."""
        was = self.caller.disabled is not None
        self.caller.disable(None)
        return was

    async def status(self) -> dict[str, Any]:
        now = self._clock.monotonic()
        disabled = self.caller.disabled
        models = {}
        for model_id, guard in self.guards.items():
            requests, tokens = self.desks[model_id].outstanding(now)
            models[model_id] = {**guard.status(), "leased": {
                "requests": requests, "tokens": tokens, "holders": self.desks[model_id].holders(now)}}
        return {
            "platform": self.platform,
            "simulated": self.simulated,
            "key_configured": bool(self.endpoint.api_key),
            "disabled": None if disabled is None else {"kind": disabled.kind, "message": disabled.message},
            "settled_on_start": self.settled_on_start,
            "counters": dict(self.caller.counters),
            "retry_budget": self.caller.retry_budget.snapshot(now),
            "models": models,
        }
