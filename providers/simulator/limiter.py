"""Per-model request and token limits over a sliding window, like a vendor's rpm/tpm.

`window_s` scales the window (60 s by default) so tests and benchmarks can hit and clear
limits quickly; the catalog's rpm/tpm then mean "per window".
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from providers.catalog import ModelSpec
from providers.clock import Clock


@dataclass(frozen=True, slots=True)
class LimitOverride:
    rpm: int | None = None
    tpm: int | None = None
    window_s: float | None = None


@dataclass(frozen=True, slots=True)
class LimitState:
    """What a vendor reports in its rate-limit headers, plus the refusal when there is one."""

    window_s: float
    rpm: int | None
    rpm_remaining: int | None
    rpm_reset_s: float
    tpm: int | None
    tpm_remaining: int | None
    tpm_reset_s: float
    exceeded: Literal["requests", "tokens"] | None = None
    retry_after_s: float = 0.0
    used: int = 0  # in the exceeded dimension
    requested: int = 0

    @property
    def refused(self) -> bool:
        return self.exceeded is not None


@dataclass(slots=True)
class _Window:
    entries: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0

    def purge(self, now: float, window_s: float) -> None:
        cutoff = now - window_s
        while self.entries and self.entries[0][0] <= cutoff:
            self.tokens -= self.entries.popleft()[1]

    def token_reset_s(self, now: float, window_s: float, need: int, limit: int) -> float:
        """Seconds until `need` more tokens fit under `limit`."""
        excess = self.tokens + need - limit
        for t, n in self.entries:
            excess -= n
            if excess <= 0:
                return t + window_s - now
        return window_s


class Limiter:
    """Sliding-window rpm/tpm per (platform, model). Admitted requests are charged at once."""

    def __init__(self, clock: Clock, *, window_s: float = 60.0, enabled: bool = True) -> None:
        self._clock = clock
        self.default_window_s = window_s
        self.enabled = enabled
        self._windows: dict[tuple[str, str], _Window] = {}
        self._overrides: dict[tuple[str, str], LimitOverride] = {}

    def configure(self, platform: str, model: str, override: LimitOverride) -> None:
        self._overrides[(platform, model)] = override

    def overrides(self) -> dict[tuple[str, str], LimitOverride]:
        return dict(self._overrides)

    def reset(self, *, overrides: bool = True) -> None:
        self._windows.clear()
        if overrides:
            self._overrides.clear()

    def limits_for(self, spec: ModelSpec) -> tuple[int | None, int | None, float]:
        o = self._overrides.get(spec.key)
        if o is None:
            return spec.rpm, spec.tpm, self.default_window_s
        return (
            o.rpm if o.rpm is not None else spec.rpm,
            o.tpm if o.tpm is not None else spec.tpm,
            o.window_s if o.window_s is not None else self.default_window_s,
        )

    def admit(self, spec: ModelSpec, tokens: int) -> LimitState | None:
        """Charge one request of `tokens` tokens, or refuse it. None when limits are off."""
        if not self.enabled:
            return None
        rpm, tpm, window_s = self.limits_for(spec)
        if rpm is None and tpm is None:
            return None
        now = self._clock.monotonic()
        w = self._windows.get(spec.key)
        if w is None:
            w = self._windows[spec.key] = _Window()
        w.purge(now, window_s)
        oldest_reset = (w.entries[0][0] + window_s - now) if w.entries else 0.0
        if rpm is not None and len(w.entries) + 1 > rpm:
            return LimitState(
                window_s, rpm, 0, oldest_reset, tpm, _left(tpm, w.tokens), oldest_reset,
                exceeded="requests", retry_after_s=oldest_reset, used=len(w.entries), requested=1,
            )
        if tpm is not None and w.tokens + tokens > tpm:
            wait = w.token_reset_s(now, window_s, tokens, tpm)
            return LimitState(
                window_s, rpm, _left(rpm, len(w.entries)), oldest_reset, tpm,
                _left(tpm, w.tokens), wait,
                exceeded="tokens", retry_after_s=wait, used=w.tokens, requested=tokens,
            )
        w.entries.append((now, tokens))
        w.tokens += tokens
        reset = w.entries[0][0] + window_s - now
        return LimitState(
            window_s, rpm, _left(rpm, len(w.entries)), reset, tpm, _left(tpm, w.tokens), reset
        )


def _left(limit: int | None, used: int) -> int | None:
    return None if limit is None else max(0, limit - used)


def go_duration(seconds: float) -> str:
    """OpenAI's reset format: `12ms`, `1.5s`, `1m0s`, `6m30.5s`."""
    if seconds < 1.0:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60.0:
        return f"{_trim(seconds)}s"
    minutes, rest = divmod(seconds, 60.0)
    return f"{int(minutes)}m{_trim(rest)}s"


def _trim(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"
