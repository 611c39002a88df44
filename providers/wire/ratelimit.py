"""Upstream rate-limit headers and retry times, parsed into plain values.

Vendors announce their limits in response headers (OpenAI/Groq `x-ratelimit-*`, Anthropic
`anthropic-ratelimit-*`, OpenRouter `x-ratelimit-*` without a dimension) and how long to wait in
`retry-after`, `retry-after-ms` or the error body (OpenAI "Please try again in 6m0s", Gemini
`google.rpc.RetryInfo.retryDelay`). Wall time is passed in, never read here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Mapping

_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_DURATION = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|us|µs|ns|h|m|s))+")
_TRY_AGAIN = re.compile(r"try again in\s+((?:(?:\d+(?:\.\d*)?|\.\d+)(?:ms|us|µs|ns|h|m|s))+)", re.I)
_NONE3: tuple[None, None, None] = (None, None, None)
_RETRY_DELAY = re.compile(r'"retryDelay"\s*:\s*"(\d+(?:\.\d*)?)s"')


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """What the upstream said about its limits; reset times are seconds from now."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


def parse_duration(text: str) -> float | None:
    """A Go-style duration (`6m0s`, `1.5s`, `12ms`, `2h3m`) or bare seconds (`20`), in seconds."""
    text = text.strip()
    if not text:
        return None
    number = _float(text)
    if number is not None:
        return max(0.0, number)
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def parse_http_date(text: str, now_wall: float) -> float | None:
    """An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`) as seconds from `now_wall` (never < 0)."""
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


def parse_rfc3339(text: str, now_wall: float) -> float | None:
    """An RFC 3339 time (`2025-01-01T00:00:30Z`) as seconds from `now_wall` (never < 0)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now_wall)


def parse_retry_after(headers: Mapping[str, str], body_text: str, now_wall: float) -> float | None:
    """Seconds to wait before retrying, from the most precise source present:
    `retry-after-ms`, `retry-after` (seconds or an HTTP date), then the error body."""
    h = _lower(headers)
    millis = _float(h.get("retry-after-ms", ""))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    value = h.get("retry-after", "").strip()
    if value:
        seconds = _float(value)
        if seconds is not None:
            return max(0.0, seconds)
        from_date = parse_http_date(value, now_wall)
        if from_date is not None:
            return from_date
    return retry_after_from_body(body_text)


def retry_after_from_body(body_text: str) -> float | None:
    """Gemini's `RetryInfo.retryDelay` ("7s") or OpenAI's "Please try again in 18.642s"."""
    delay = _RETRY_DELAY.search(body_text)
    if delay:
        return float(delay.group(1))
    again = _TRY_AGAIN.search(body_text)
    if again:
        return parse_duration(again.group(1))
    return None


def parse_rate_limit_headers(headers: Mapping[str, str], now_wall: float) -> RateLimitInfo | None:
    """Limits from OpenAI/Groq, Anthropic or OpenRouter headers; None when there are none."""
    h = _lower(headers)
    if not any("ratelimit" in name for name in h):  # every style's names have it
        return None
    for parse in (_openai_style, _anthropic_style, _openrouter_style):
        info = parse(h, now_wall)
        if info != RateLimitInfo():
            return info
    return None


def _openai_style(h: Mapping[str, str], now_wall: float) -> RateLimitInfo:
    def get(what: str, dim: str) -> str:
        return h.get(f"x-ratelimit-{what}-{dim}", "")

    return RateLimitInfo(
        limit_requests=_int(get("limit", "requests")),
        remaining_requests=_int(get("remaining", "requests")),
        reset_requests_s=parse_duration(get("reset", "requests")),
        limit_tokens=_int(get("limit", "tokens")),
        remaining_tokens=_int(get("remaining", "tokens")),
        reset_tokens_s=parse_duration(get("reset", "tokens")),
    )


def _anthropic_style(h: Mapping[str, str], now_wall: float) -> RateLimitInfo:
    def dim(name: str) -> tuple[int | None, int | None, float | None]:
        prefix = f"anthropic-ratelimit-{name}-"
        reset = h.get(prefix + "reset")
        return (
            _int(h.get(prefix + "limit", "")),
            _int(h.get(prefix + "remaining", "")),
            parse_rfc3339(reset, now_wall) if reset else None,
        )

    requests = dim("requests")
    # `tokens` is the most restrictive of the token limits; without it, take the tighter one.
    tokens = dim("tokens")
    if tokens == _NONE3:
        split = [d for d in (dim("input-tokens"), dim("output-tokens")) if d != _NONE3]
        if split:
            tokens = min(split, key=lambda d: float("inf") if d[1] is None else d[1])
    return RateLimitInfo(*requests, *tokens)


def _openrouter_style(h: Mapping[str, str], now_wall: float) -> RateLimitInfo:
    reset_ms = _float(h.get("x-ratelimit-reset", ""))
    return RateLimitInfo(
        limit_requests=_int(h.get("x-ratelimit-limit", "")),
        remaining_requests=_int(h.get("x-ratelimit-remaining", "")),
        reset_requests_s=None if reset_ms is None else max(0.0, reset_ms / 1000.0 - now_wall),
    )


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value == value and value not in (float("inf"), float("-inf")) else None


def _int(text: str) -> int | None:
    value = _float(text)
    return None if value is None else int(value)
