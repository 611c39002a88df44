"""The Anthropic Messages protocol: `POST /v1/messages`, `GET /v1/models` (paginated)."""
from __future__ import annotations

import hashlib
import json
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
from providers.simulator.answers import SimTool, ToolUse
from providers.simulator.limiter import LimitState
from providers.simulator.text import Completion, count_tokens, fragments, split_for_stream, wants_json

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}
MIN_THINKING_BUDGET = 1024


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
        last_user, images, results = "", [], []
        open_calls: list[str] = []  # tool_use ids of the previous assistant turn
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
                role = m.get("role") if isinstance(m, dict) else None
                raise SimError("bad_request", 400, f"messages.{i}.role: Input should be 'user' or 'assistant'"
                               + (f" (got '{role}')" if role else ""))
            blocks = _blocks(m.get("content"), i)
            kinds = [b["type"] for b in blocks]
            if m["role"] == "user":
                answered = [b.get("tool_use_id") for b in blocks if b["type"] == "tool_result"]
                stray = [a for a in answered if a not in open_calls]
                if stray:
                    raise SimError("bad_request", 400, f"messages.{i}.content: unexpected `tool_use_id` found in "
                                   f"`tool_result` blocks: {stray[0]}. Each `tool_result` block must have a "
                                   "corresponding `tool_use` block in the previous message.")
                missing = [c for c in open_calls if c not in answered]
                if missing:
                    raise SimError("bad_request", 400, f"messages.{i}: `tool_use` ids were found without "
                                   f"`tool_result` blocks immediately after: {', '.join(missing)}. Each "
                                   "`tool_use` block must have a corresponding `tool_result` block in the next message.")
                if answered and kinds[: len(answered)] != ["tool_result"] * len(answered):
                    raise SimError("bad_request", 400, f"messages.{i}.content: `tool_result` blocks must come "
                                   "first in the user message.")
                open_calls = []
                results = [_result_text(b) for b in blocks if b["type"] == "tool_result"]
                images += [_image_kind(b, i) for b in blocks if b["type"] == "image"]
                text = "".join(str(b.get("text") or "") for b in blocks if b["type"] == "text")
                last_user = text if text or not results else last_user
            else:
                if "tool_result" in kinds or "image" in kinds:
                    raise SimError("bad_request", 400, f"messages.{i}.content: assistant messages cannot "
                                   "contain `tool_result` or `image` blocks.")
                open_calls = [str(b.get("id")) for b in blocks if b["type"] == "tool_use"]
                results = []
                text = "".join(str(b.get("text") or "") for b in blocks if b["type"] == "text")
                texts += [json.dumps(b.get("input")) for b in blocks if b["type"] == "tool_use"]
            texts.append(text)
        if open_calls:
            raise SimError("bad_request", 400, f"`tool_use` ids were found without `tool_result` blocks "
                           f"immediately after: {', '.join(open_calls)}.")
        max_tokens = int_field(body, "max_tokens")
        reasoning = _thinking(body.get("thinking"), max_tokens)
        return SimRequest(
            model=model,
            prompt_texts=tuple(texts),
            last_user=last_user,
            max_tokens=max_tokens,
            json_mode=wants_json(system),
            stream=bool(body.get("stream")),
            tools=_tool_use(body, tuple(results), reasoning),
            schema=_schema(body.get("output_config")),
            images=tuple(images),
            reasoning=reasoning,
        )

    def _content(self, done: Completion) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if done.reasoning:
            blocks.append({"type": "thinking", "thinking": done.reasoning, "signature": thinking_signature(done.reasoning)})
        if done.text or not done.tool_calls:
            blocks.append({"type": "text", "text": done.text})
        blocks += [{"type": "tool_use", "id": "toolu_" + c.id.removeprefix("call_"), "name": c.name, "input": c.args}
                   for c in done.tool_calls]
        return blocks

    def _message(self, req: SimRequest, done: Completion | None, rid: str) -> dict[str, Any]:
        return {
            "id": f"msg_{rid}",
            "type": "message",
            "role": "assistant",
            "model": req.model,
            "content": self._content(done) if done else [],
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
        frames = [Frame(_event("message_start", {"type": "message_start", "message": start}))]
        for index, block in enumerate(self._content(done)):
            block_frames = _block_frames(index, block)
            if index == 0:  # the vendor's order: the first block starts, then a ping
                block_frames.insert(1, Frame(_event("ping", {"type": "ping"})))
            frames += block_frames
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


# ------------------------------------------------------------------------------------------
# Content blocks
# ------------------------------------------------------------------------------------------

_BLOCK_TYPES = frozenset({"text", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document"})


def thinking_signature(text: str) -> str:
    return "sim-thinking-" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise SimError("bad_request", 400, f"messages.{i}.content: Input should be a valid list or string")
    for j, b in enumerate(content):
        if not isinstance(b, dict) or b.get("type") not in _BLOCK_TYPES:
            kind = b.get("type") if isinstance(b, dict) else None
            raise SimError("bad_request", 400, f"messages.{i}.content.{j}: Input tag '{kind}' found using 'type' "
                           "does not match any of the expected tags")
        if b["type"] == "thinking" and b.get("signature") != thinking_signature(str(b.get("thinking") or "")):
            raise SimError("bad_request", 400, f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
    return content


def _image_kind(block: dict[str, Any], i: int) -> str:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and source.get("media_type") and source.get("data"):
        return str(source["media_type"])
    if source.get("type") == "url" and str(source.get("url") or "").startswith(("http://", "https://")):
        return "url"
    raise SimError("bad_request", 400, f"messages.{i}.content: image source must be base64 (media_type, data) or url")


def _result_text(block: dict[str, Any]) -> str:
    content = block.get("content")
    return content if isinstance(content, str) else text_of(content or [])


def _thinking(raw: Any, max_tokens: int | None) -> bool:
    if raw is None or (isinstance(raw, dict) and raw.get("type") == "disabled"):
        return False
    if not isinstance(raw, dict) or raw.get("type") != "enabled":
        raise SimError("bad_request", 400, "thinking.type: Input should be 'enabled' or 'disabled'")
    budget = raw.get("budget_tokens")
    if not isinstance(budget, int) or budget < MIN_THINKING_BUDGET:
        raise SimError("bad_request", 400, f"thinking.enabled.budget_tokens: Input should be greater than or "
                       f"equal to {MIN_THINKING_BUDGET}")
    if max_tokens is not None and budget >= max_tokens:
        raise SimError("bad_request", 400, "`max_tokens` must be greater than `thinking.budget_tokens`")
    return True


def _tool_use(body: dict[str, Any], results: tuple[str, ...], thinking: bool) -> ToolUse:
    tools = []
    for i, t in enumerate(body.get("tools") or ()):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise SimError("bad_request", 400, f"tools.{i}.name: Field required")
        if not isinstance(t.get("input_schema"), dict):
            raise SimError("bad_request", 400, f"tools.{i}.custom.input_schema: Field required")
        tools.append(SimTool(t["name"], t["input_schema"]))
    choice = body.get("tool_choice")
    if choice is None:
        return ToolUse(tuple(tools), results=results)
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in ("auto", "any", "tool", "none"):
        raise SimError("bad_request", 400, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if thinking and kind in ("any", "tool"):
        raise SimError("bad_request", 400, "Thinking may not be enabled when tool_choice forces tool use.")
    forced = choice.get("name") if kind == "tool" else None
    if kind == "tool" and forced not in {t.name for t in tools}:
        raise SimError("bad_request", 400, f"tool_choice.tool.name: tool '{forced}' not found in tools")
    mode = {"auto": "auto", "any": "required", "tool": "function", "none": "none"}[kind]
    return ToolUse(tuple(tools), mode, forced, not choice.get("disable_parallel_tool_use"), results)


def _schema(config: Any) -> dict[str, Any] | None:
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise SimError("bad_request", 400, "output_config.format: expected {type: 'json_schema', schema: {...}}")
    return fmt["schema"]


def _block_frames(index: int, block: dict[str, Any]) -> list[Frame]:
    kind = block["type"]
    if kind == "text":
        start, deltas = {"type": "text", "text": ""}, [("text_delta", "text", p) for p in split_for_stream(block["text"])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [("thinking_delta", "thinking", block["thinking"]), ("signature_delta", "signature", block["signature"])]
    else:
        start = {**block, "input": {}}
        deltas = [("input_json_delta", "partial_json", p) for p in fragments(json.dumps(block["input"]))]
    frames = [Frame(_event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))]
    for dtype, field, value in deltas:
        delta = {"type": "content_block_delta", "index": index, "delta": {"type": dtype, field: value}}
        frames.append(Frame(_event("content_block_delta", delta), count_tokens(value)))
    frames.append(Frame(_event("content_block_stop", {"type": "content_block_stop", "index": index})))
    return frames
