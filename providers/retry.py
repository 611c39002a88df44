"""Retry decisions for the one retry loop (a ProviderActor's; SDK retries stay off). Pure: no
sleeping here, `now` and `deadline` are monotonic seconds passed in.

    budget.record_request(now)                      # once per request, not per attempt
    for attempt in itertools.count(1):
        reservation = await limits.acquire(...)     # every attempt is charged on its own
        try: return await call()
        except ProviderError as err:
            delay = policy.next_delay(attempt, err, clock.monotonic(), deadline)
            if delay is None or not budget.try_spend_retry(clock.monotonic()):
                return err                          # the router falls back at once
            await clock.sleep(delay)
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

from providers.types import ProviderError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Full-jitter exponential backoff: the delay before retry n (after n failed attempts) is
    uniform in [0, min(cap_s, base_s * 2**(n - 1))], raised to the error's Retry-After if that is
    longer. `max_attempts` counts every attempt, the first included."""

    max_attempts: int = 3
    base_s: float = 0.25
    cap_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_s < 0 or self.cap_s < 0:
            raise ValueError("max_attempts must be >= 1, base_s and cap_s >= 0")

    def backoff_ceiling(self, attempt: int) -> float:
        """Upper bound of the jittered delay after `attempt` failed attempts (>= 1)."""
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt - 1, 64))

    def next_delay(
        self, attempt: int, error: BaseException, now: float, deadline: float
    ) -> float | None:
        """Seconds to wait before the next attempt, after `attempt` failed attempts; None = do
        not retry (not retryable, attempts used up, or the wait would reach the deadline)."""
        if attempt < 1:
            raise ValueError("attempt counts failed attempts: >= 1")
        if attempt >= self.max_attempts:
            return None
        if not isinstance(error, ProviderError) or not error.retryable:
            return None
        delay = self.rng.uniform(0.0, self.backoff_ceiling(attempt))
        if error.retry_after_s is not None:
            delay = max(delay, error.retry_after_s)
        if now + delay >= deadline:
            return None
        return delay


class RetryBudget:
    """Per platform: retries in the last `window_s` stay within `ratio` of the requests in it,
    or `min_retries` if that is more (so a cold start can still retry). A retry storm against a
    failing upstream is thereby capped at ~`ratio` extra load."""

    def __init__(self, ratio: float = 0.2, min_retries: int = 3, window_s: float = 60.0) -> None:
        if ratio < 0 or min_retries < 0 or window_s <= 0:
            raise ValueError("ratio and min_retries must be >= 0, window_s > 0")
        self.ratio = ratio
        self.min_retries = min_retries
        self.window_s = window_s
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def record_request(self, now: float) -> None:
        """Count one request (its first attempt; retries are not requests)."""
        self._requests.append(now)

    def allowance(self, now: float) -> float:
        """How many retries the current window allows in all."""
        self._expire(now)
        return max(float(self.min_retries), self.ratio * len(self._requests))

    def try_spend_retry(self, now: float) -> bool:
        allowance = self.allowance(now)  # expires old entries first
        if len(self._retries) + 1 > allowance:
            return False
        self._retries.append(now)
        return True

    def snapshot(self, now: float) -> dict[str, float]:
        allowance = self.allowance(now)
        return {
            "requests": len(self._requests),
            "retries": len(self._retries),
            "allowance": allowance,
        }

    def _expire(self, now: float) -> None:
        for log in (self._requests, self._retries):
            while log and log[0] + self.window_s <= now:
                log.popleft()
