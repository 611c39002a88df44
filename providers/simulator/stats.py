"""Request counters per (platform, model) and a bounded log of recent requests."""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class RequestRecord:
    t: float  # wall-clock seconds (clock.time())
    platform: str
    model: str  # catalog id when the model is known, else the name asked for
    status: int  # HTTP status; 0 = the request was left hanging (no response)
    stream: bool
    input_tokens: int
    output_tokens: int
    request_id: str | None  # the x-switchboard-request-id header, when sent
    requested_model: str = ""


@dataclass(slots=True)
class ModelCounters:
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    streams: int = 0
    statuses: dict[str, int] = field(default_factory=dict)


class Stats:
    """Counts every request the simulator answered (errors included) and keeps the last
    `log_size` of them."""

    def __init__(self, log_size: int = 10_000) -> None:
        self._counters: dict[tuple[str, str], ModelCounters] = {}
        self._log: deque[RequestRecord] = deque(maxlen=log_size)

    def record(self, rec: RequestRecord) -> None:
        c = self._counters.get((rec.platform, rec.model))
        if c is None:
            c = self._counters[(rec.platform, rec.model)] = ModelCounters()
        c.requests += 1
        if rec.status >= 400 or rec.status == 0:
            c.errors += 1
        if rec.stream:
            c.streams += 1
        c.input_tokens += rec.input_tokens
        c.output_tokens += rec.output_tokens
        key = str(rec.status)
        c.statuses[key] = c.statuses.get(key, 0) + 1
        self._log.append(rec)

    def counters(self, platform: str, model: str) -> ModelCounters:
        return self._counters.get((platform, model)) or ModelCounters()

    def snapshot(self) -> dict[str, Any]:
        """`{"total": {...}, "platforms": {platform: {model: counters}}}`."""
        platforms: dict[str, dict[str, Any]] = {}
        total = ModelCounters()
        for (platform, model), c in sorted(self._counters.items()):
            platforms.setdefault(platform, {})[model] = asdict(c)
            total.requests += c.requests
            total.errors += c.errors
            total.streams += c.streams
            total.input_tokens += c.input_tokens
            total.output_tokens += c.output_tokens
            for status, n in c.statuses.items():
                total.statuses[status] = total.statuses.get(status, 0) + n
        return {"total": asdict(total), "platforms": platforms}

    def log(
        self, *, limit: int | None = None, platform: str | None = None, request_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The logged requests, oldest first, optionally filtered; `limit` keeps the newest."""
        rows = [
            r
            for r in self._log
            if (platform is None or r.platform == platform)
            and (request_id is None or r.request_id == request_id)
        ]
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return [asdict(r) for r in rows]

    def reset(self) -> None:
        self._counters.clear()
        self._log.clear()
