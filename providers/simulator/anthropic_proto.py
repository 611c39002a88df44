"""The Anthropic Messages protocol: `POST /v1/messages`, `GET /v1/models` (paginated)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from providers.catalog import Catalog, ModelSpec
from providers.simulator.core import (
    Frame,
    SimError,
    SimRequest,
    StreamPlan,
    bearer_key,
    dumps,
    int_field,
    json_response,
    retry_after_header,
    text_of,
)
from providers.simulator.limiter import LimitState
from providers.simulator.text import Completion, count_tokens, split_for_stream, wants_json

_STOP = {"stop": "end_turn", "length": "max_tokens"}


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(obj) + b"\n\n"


def rfc3339(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicDialect:
    platform = "anthropic"

    def api_key(self, request: Request) -> str | None:
        """`x-api-key`, or a Bearer token (what newer SDKs send)."""
        return request.headers.get("x-api-key", "").strip() or bearer_key(request)

    def parse(self, body: Any, request: Request, path_model: str | None) -> SimRequest:
        if "anthropic-version" not in request.headers:
            raise SimError("bad_request", 400, "anthropic-version: header is required")
        if not isinstance(body, dict):
            raise SimError("bad_request", 400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise SimError("bad_request", 400, "model: Field required")
        if "max_tokens" not in body:
            raise SimError("bad_request", 400, "max_tokens: Field required")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimError("bad_request", 400, "messages: at least one message is required")
        system = text_of(body.get("system"))
        texts = [system] if system else []
        last_user = ""
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                raise SimError("bad_request", 400, "messages: roles must be 'user' or 'assistant'")
            text = text_of(m.get("content"))
            texts.append(text)
            if m["role"] == "user":
                last_user = text
        return SimRequest(
            model=model,
            prompt_texts=tuple(texts),
            last_user=last_user,
            max_tokens=int_field(body, "max_tokens"),
            json_mode=wants_json(system),
            stream=bool(body.get("stream")),
        )

    def _message(self, req: SimRequest, done: Completion | None, rid: str) -> dict[str, Any]:
        return {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": [{"type": "text", "text": done.text}] if done else [],
            "stop_reason": _STOP[done.finish] if done else None,
            "stop_sequence": None,
        }

    def _usage(self, done: Completion, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": done.input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    def response(
        self, req: SimRequest, spec: ModelSpec, done: Completion, headers: dict[str, str]
    ) -> Response:
        rid = uuid.uuid4().hex
        body = {**self._message(req, done, rid), "usage": self._usage(done, done.output_tokens)}
        headers["request-id"] = f"req_{rid}"
        return json_response(200, body, headers)

    def stream(self, req: SimRequest, spec: ModelSpec, done: Completion) -> StreamPlan:
        rid = uuid.uuid4().hex
        start = {**self._message(req, None, rid), "usage": self._usage(done, 1)}
        frames = [
            Frame(_event("message_start", {"type": "message_start", "message": start})),
            Frame(_event("content_block_start", {
                "type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""},
            })),
            Frame(_event("ping", {"type": "ping"})),
        ]
        for piece in split_for_stream(done.text):
            delta = {"type": "content_block_delta", "index": 0,
                     "delta": {"type": "text_delta", "text": piece}}
            frames.append(Frame(_event("content_block_delta", delta), count_tokens(piece)))
        frames.append(Frame(_event("content_block_stop", {"type": "content_block_stop", "index": 0})))
        frames.append(Frame(_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": _STOP[done.finish], "stop_sequence": None},
            "usage": {"output_tokens": done.output_tokens},
        })))
        frames.append(Frame(_event("message_stop", {"type": "message_stop"})))
        return StreamPlan((), tuple(frames))

    def models(self, catalog: Catalog, request: Request) -> Response:
        ids = [m.id for m in catalog.live() if m.platform == self.platform]
        q = request.query_params
        try:
            limit = min(1000, max(1, int(q.get("limit", 20))))
        except ValueError:
            return self.error(SimError("bad_request", 400, "limit: must be an integer"))
        if q.get("after_id") in ids:
            start = ids.index(q["after_id"]) + 1
            page = ids[start : start + limit]
            has_more = start + limit < len(ids)
        elif q.get("before_id") in ids:
            end = ids.index(q["before_id"])
            page = ids[max(0, end - limit) : end]
            has_more = end - limit > 0
        else:
            page, has_more = ids[:limit], len(ids) > limit
        data = [self.model_entry(catalog.get(self.platform, i)) for i in page]
        return json_response(200, {
            "data": data,
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        })

    def model_entry(self, m: ModelSpec) -> dict[str, Any]:
        return {"type": "model", "id": m.id, "display_name": m.id, "created_at": "2025-01-01T00:00:00Z"}

    def limit_headers(self, state: LimitState, now: float) -> dict[str, str]:
        h: dict[str, str] = {}
        if state.rpm is not None:
            h["anthropic-ratelimit-requests-limit"] = str(state.rpm)
            h["anthropic-ratelimit-requests-remaining"] = str(state.rpm_remaining)
            h["anthropic-ratelimit-requests-reset"] = rfc3339(now + state.rpm_reset_s)
        if state.tpm is not None:
            h["anthropic-ratelimit-tokens-limit"] = str(state.tpm)
            h["anthropic-ratelimit-tokens-remaining"] = str(state.tpm_remaining)
            h["anthropic-ratelimit-tokens-reset"] = rfc3339(now + state.tpm_reset_s)
        return h

    def error(self, err: SimError) -> Response:
        status, etype, message = self.describe(err)
        body = {
            "type": "error",
            "error": {"type": etype, "message": message},
            "request_id": f"req_{uuid.uuid4().hex}",
        }
        return json_response(status, body, retry_after_header(err.retry_after_s))

    def describe(self, err: SimError) -> tuple[int, str, str]:
        """(status, error type, message) in Anthropic's words."""
        k = err.kind
        if k == "auth_missing":
            return 401, "authentication_error", "x-api-key header is required"
        if k == "auth_invalid":
            return 401, "authentication_error", f"invalid x-api-key: {err.key}"
        if k in ("model_not_found", "model_retired"):
            return 404, "not_found_error", f"model: {err.model}"
        if k == "context_too_long":
            window, used = err.context or (0, 0)
            return 400, "invalid_request_error", f"prompt is too long: {used} tokens > {window} maximum"
        if k in ("payment_required", "insufficient_quota"):
            return (err.status if err.status == 402 else 400, "billing_error",
                    "Your credit balance is too low to access the Anthropic API. Please go to "
                    "Plans & Billing to upgrade or purchase credits.")
        if k == "rate_limited":
            return 429, "rate_limit_error", self.rate_limit_message(err)
        if k == "server_error":
            if err.status == 529:
                return 529, "overloaded_error", "Overloaded"
            return err.status, "api_error", "Internal server error"
        return err.status, "invalid_request_error", err.detail

    def rate_limit_message(self, err: SimError) -> str:
        lim = err.limit
        if lim is None or lim.exceeded is None:
            return "This request would exceed your organization's rate limit. Please try again later."
        if lim.exceeded == "requests":
            what = f"{lim.rpm} requests per minute"
        else:
            what = f"{lim.tpm} input tokens per minute"
        return (f"This request would exceed the rate limit for your organization (org-sim) of "
                f"{what}. For details, refer to: https://docs.claude.com/en/api/rate-limits. "
                "You can see the response headers for current usage.")
