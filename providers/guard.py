"""Admission and settlement for one (platform, model): a circuit-breaker permit plus every
rate-limit dimension, charged together. Pure logic over the injected clock (no Ray, no I/O);
the ProviderActor holds one ModelGuard per model.

Deadlines arrive as wall-clock times (they cross processes); limits and breakers run on the
monotonic clock, so each call converts once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from providers.breaker import Breaker, BreakerConfig, BreakerOpen, Outcome, Permit, outcome_for
from providers.catalog import ModelSpec
from providers.clock import Clock
from providers.limits import LimitExceeded, LimitState, Reservation
from providers.types import BreakerOpenRefusal, ProviderError, RateLimitedError, RateLimitRefusal, Refusal
from providers.wire.ratelimit import RateLimitInfo


@dataclass(frozen=True, slots=True)
class Admission:
    reservation: Reservation
    permit: Permit


def _seconds_until(until: float, now: float) -> float | None:
    return None if math.isinf(until) else max(0.0, until - now)


class ModelGuard:
    def __init__(
        self,
        spec: ModelSpec,
        clock: Clock,
        *,
        window_scale: float = 1.0,
        guard_s: float = 0.1,
        breaker: BreakerConfig | None = None,
        settle: bool = False,
    ) -> None:
        self.spec = spec
        self._clock = clock
        settle_s = 60.0 * window_scale + guard_s if settle else 0.0
        self.limits = LimitState.for_model(spec, clock=clock, scale=window_scale, guard_s=guard_s, settle_s=settle_s)
        self.breaker = Breaker(breaker)

    def _breaker_refusal(self, refused: BreakerOpen, now: float) -> BreakerOpenRefusal:
        return BreakerOpenRefusal(
            f"circuit breaker {refused.state}", platform=self.spec.platform, model=self.spec.id,
            retry_after_s=_seconds_until(refused.until, now),
        )

    def _limit_refusal(self, until: float, now: float, dimension: str = "") -> RateLimitRefusal:
        what = f" ({dimension})" if dimension else ""
        return RateLimitRefusal(
            f"local rate limit{what} reached", platform=self.spec.platform, model=self.spec.id,
            retry_after_s=_seconds_until(until, now),
        )

    async def admit(self, tokens: int, deadline_wall: float, wait: bool = False) -> Admission | Refusal:
        """A breaker permit and a reservation of `tokens`, or a refusal saying until when.
        With `wait`, waits (event-driven, never past the deadline) instead of refusing."""
        clock = self._clock
        while True:
            now = clock.monotonic()
            deadline = now + (deadline_wall - clock.time())
            permit = self.breaker.acquire(now)
            if isinstance(permit, BreakerOpen):
                if not wait or permit.until >= deadline:
                    return self._breaker_refusal(permit, now)
                await clock.sleep(permit.until - now)
                continue
            reservation = self.limits.try_acquire(tokens, now)
            if reservation is not None:
                return Admission(reservation, permit)
            self.breaker.record_neutral(permit, now)  # hand a probe permit back while we wait
            until = self.limits.when_available(tokens, now)
            if not wait or until >= deadline:
                return self._limit_refusal(until, now)
            try:
                reservation = await self.limits.acquire(tokens, deadline)
            except LimitExceeded as exc:
                return self._limit_refusal(exc.until, clock.monotonic(), exc.dimension)
            now = clock.monotonic()
            permit = self.breaker.acquire(now)
            if isinstance(permit, Permit):
                return Admission(reservation, permit)
            self.limits.cancel(reservation)  # tripped while we waited: never sent

    def succeeded(self, admission: Admission, used_tokens: int, info: RateLimitInfo | None) -> None:
        self.finish(admission, "success", used_tokens, info)

    def failed(self, admission: Admission, error: ProviderError, used_tokens: int | None = None) -> None:
        """The call failed: the charge stays (the upstream may have counted it), a 429 cools the
        model down until its retry time, and the breaker hears the outcome."""
        cool = error.retry_after_s if isinstance(error, RateLimitedError) and error.retry_after_s else None
        self.finish(admission, outcome_for(error), used_tokens, None, cool)

    def finish(self, admission: Admission, outcome: Outcome, used_tokens: int | None,
               info: RateLimitInfo | None = None, cool_for_s: float | None = None) -> None:
        """A sent call's result: its real tokens (None: unknown, the charge stays), the
        upstream's rate-limit headers, a 429's cool-down, and the breaker's outcome."""
        now = self._clock.monotonic()
        if used_tokens is not None:
            self.limits.reconcile(admission.reservation, used_tokens)
        else:
            self.limits.release(admission.reservation)
        if info is not None:
            self.limits.observe_headers(info, now)
        if cool_for_s:
            self.limits.cool_down(now + cool_for_s)
        self.breaker.record(admission.permit, outcome, now)

    def abandoned(self, admission: Admission) -> None:
        """Admitted but never sent (e.g. the deadline passed): refund everything."""
        now = self._clock.monotonic()
        self.limits.cancel(admission.reservation)
        self.breaker.record_neutral(admission.permit, now)

    def status(self) -> dict[str, Any]:
        now = self._clock.monotonic()
        cooled = self.limits.cooled_until
        return {
            "breaker": self.breaker.snapshot(now),
            "limits": self.limits.headroom(now),
            "cooled_for_s": round(cooled - now, 3) if cooled > now else 0.0,
        }
