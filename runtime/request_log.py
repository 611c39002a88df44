"""What one HTTP request did, gathered for its single log line.

The request-log middleware (runtime/http/middleware.py) opens a record per request; code on the
request path (auth, the gateway's ledger row, the routes) adds fields with `note(**fields)`;
the middleware writes one JSON line when the response is finished. The record is a mutable
dict held in a context variable, so notes made in child tasks (Starlette runs some middleware
and streaming bodies in task groups, which copy the context) still reach it. Outside a request
`note` does nothing.
"""
from __future__ import annotations

import re
from contextvars import ContextVar, Token
from typing import Any

from providers.request_ids import new_request_id

_record: ContextVar[dict[str, Any] | None] = ContextVar("switchboard_request_record", default=None)

#: an incoming `X-Request-ID` is kept only when it looks like an id (no log injection)
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{8,128}$")

#: summed across notes (an ensemble makes several gateway calls in one request)
_ADDITIVE = frozenset({"input_tokens", "output_tokens", "cost_usd", "saved_usd", "calls"})


def accept_request_id(incoming: str | None) -> str:
    """The client's request id when it is safe to log and echo, else a fresh one."""
    if incoming and _SAFE_ID.match(incoming):
        return incoming
    return new_request_id()


def begin(request_id: str) -> Token:
    """Open the record of the current request (the middleware calls this)."""
    return _record.set({"request_id": request_id})


def end(token: Token) -> dict[str, Any]:
    """Close the record and return what was noted."""
    record = _record.get() or {}
    _record.reset(token)
    return record


def note(**fields: Any) -> None:
    """Add fields to the current request's log line. Token counts and costs add up; other
    fields keep the latest value. A no-op outside a request."""
    record = _record.get()
    if record is None:
        return
    for name, value in fields.items():
        if name in _ADDITIVE and isinstance(value, (int, float)):
            record[name] = record.get(name, 0) + value
        else:
            record[name] = value


def current_request_id() -> str:
    """The current request's id (what the response's `x-request-id` says), or a fresh one
    outside a request; routes give it to the ChatRequest so the ledger row carries it."""
    record = _record.get()
    return record["request_id"] if record else new_request_id()


def note_outcome(plan: Any, ctx: Any, outcome: Any) -> None:
    """What one gateway call did (runtime/core/gateway.py calls this where it builds the ledger row)."""
    note(
        key_id=getattr(ctx, "key_id", None),
        use_case=getattr(ctx, "use_case", None) or getattr(plan, "use_case", None),
        chain=getattr(plan, "chain", None),
        platform=outcome.platform,
        model=outcome.model,
        input_tokens=outcome.usage.input_tokens,
        output_tokens=outcome.usage.output_tokens,
        cost_usd=outcome.cost_usd,
        saved_usd=outcome.saved_usd,
        cache="hit" if outcome.status == "cached" else "miss",
        fallback=outcome.fallback_used,
        attempts=outcome.attempts,
        outcome=outcome.status,
        error_kind=outcome.error_kind,
        calls=1,
    )
