"""Shared helpers for mapping upstream failures onto the taxonomy in providers/types.py.

Each protocol module extracts its vendor's (code, type, message) and refines the kind; the
status-based default, key redaction, message trimming and error construction live here.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping

from providers.wire.ratelimit import parse_retry_after
from providers.types import ERROR_CLASSES, ErrorKind, ProviderError, ServerError

MAX_MESSAGE_CHARS = 300

# Anything that looks like a credential: vendor key shapes, bearer tokens, and whatever follows
# "API key provided:" / "for API key" / "x-api-key:" (vendors echo the key they were sent).
_KEY_SHAPES = re.compile(
    r"\b(?:sk-ant-[\w\-*]+|sk-[\w\-*]{6,}|sk_[\w*]{10,}|gsk_[\w*]+|AIza[\w\-*]{10,})"
)
_KEY_CONTEXT = re.compile(
    r"(?i)((?:api[ _-]?key(?: provided)?\s*:|for api key|x-api-key\s*:|bearer)\s+)([^\s,;'\")]+)"
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """Remove anything key-shaped from an upstream message."""
    text = _KEY_SHAPES.sub(REDACTED, text)
    return _KEY_CONTEXT.sub(lambda m: m.group(1) + REDACTED, text)


def short_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A redacted, single-line, bounded vendor message."""
    clean = " ".join(redact(text).split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def kind_for_status(status: int | None) -> ErrorKind:
    """The default taxonomy class for an HTTP status (protocols refine it from the body)."""
    if status in (401, 403):
        return "authentication"
    if status == 402:
        return "out_of_credit"
    if status == 404:
        return "model_not_found"
    if status == 408:
        return "timeout"
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded"
    if status is not None and 400 <= status < 500:
        return "bad_request"
    return "server_error"


def make_error(
    kind: ErrorKind,
    message: str,
    *,
    platform: str,
    model: str,
    status: int | None = None,
    retry_after_s: float | None = None,
) -> ProviderError:
    cls = ERROR_CLASSES[kind]
    return cls(
        short_message(message) or kind.replace("_", " "),
        platform=platform,
        model=model,
        status=status,
        retry_after_s=retry_after_s,
    )


def decode_body(body: bytes) -> tuple[dict[str, Any], str]:
    """An error body as (JSON object or {}, text). Never raises."""
    text = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}, text
    if isinstance(parsed, list) and parsed and isinstance(parsed[0], dict):
        parsed = parsed[0]  # Gemini's streaming endpoint wraps errors in an array
    return (parsed if isinstance(parsed, dict) else {}), text


def error_object_and_wait(
    headers: Mapping[str, str], body: bytes, now_wall: float, *, bare_body_is_error: bool = False
) -> tuple[dict[str, Any], float | None]:
    """An error response's error object (the body's `error`, or the whole body when
    `bare_body_is_error`, or its text as the message) and its retry time."""
    parsed, text = decode_body(body)
    if bare_body_is_error and parsed:
        error = parsed.get("error", parsed)
    else:
        error = parsed.get("error") if isinstance(parsed.get("error"), dict) else {"message": text}
    return error, parse_retry_after(headers, text, now_wall)


def load_chunk(data: str, *, platform: str, model: str) -> dict[str, Any]:
    """One streamed JSON chunk. A malformed chunk is a `ServerError` (it counts against the
    breaker: the upstream sent garbage), not a `StreamCutError`."""
    try:
        parsed = json.loads(data)
    except ValueError:
        raise ServerError("malformed stream chunk", platform=platform, model=model) from None
    if not isinstance(parsed, dict):
        raise ServerError("malformed stream chunk", platform=platform, model=model)
    return parsed


def text_field(obj: Any, key: str) -> str:
    """obj[key] as a string ("" when absent or not a scalar)."""
    value = obj.get(key) if isinstance(obj, dict) else None
    return "" if value is None or isinstance(value, (dict, list)) else str(value)
