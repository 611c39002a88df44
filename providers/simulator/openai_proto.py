"""The OpenAI chat-completions protocol, as spoken by OpenAI, Groq and OpenRouter.

The three differ in small, named ways (error messages, retired-model answers, usage in
streams, rate-limit headers); each is a subclass overriding only those.
"""
from __future__ import annotations

import json
import time
import uuid
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
from providers.simulator.limiter import LimitState, go_duration
from providers.simulator.text import Completion, count_tokens, fragments, split_for_stream, wants_json

_DONE = b"data: [DONE]\n\n"
_FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls"}


def _sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


class OpenAIDialect:
    platform = "openai"
    owned_by = "openai"

    # -- request ---------------------------------------------------------------------------

    def api_key(self, request: Request) -> str | None:
        return bearer_key(request)

    def parse(self, body: Any, request: Request, path_model: str | None) -> SimRequest:
        if not isinstance(body, dict):
            raise SimError("bad_request", 400, "the request body must be a JSON object")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise SimError("bad_request", 400, "you must provide a model parameter")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise SimError("bad_request", 400, "'messages' must be a non-empty array")
        texts, system, last_user, images = [], [], "", []
        open_calls: list[str] = []  # tool_call ids of the last assistant turn not yet answered
        results: list[str] = []
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or "role" not in m:
                raise SimError("bad_request", 400, "each message needs a 'role'")
            role = m["role"]
            if role != "tool" and open_calls:
                raise SimError("bad_request", 400, "An assistant message with 'tool_calls' must be followed by "
                               "tool messages responding to each 'tool_call_id'. The following tool_call_ids did "
                               f"not have response messages: {', '.join(open_calls)}")
            text = text_of(m.get("content"))
            texts.append(text)
            if role in ("system", "developer"):
                system.append(text)
            elif role == "user":
                last_user, results = text, []
                images += _images(m.get("content"))
            elif role == "assistant":
                results = []
                open_calls = [str(c.get("id")) for c in m.get("tool_calls") or () if isinstance(c, dict)]
                texts += [json.dumps(c.get("function")) for c in m.get("tool_calls") or ()]
            elif role == "tool":
                call_id = m.get("tool_call_id")
                if call_id not in open_calls:
                    raise SimError("bad_request", 400, f"Invalid parameter: messages with role 'tool' must be a "
                                   f"response to a preceeding message with 'tool_calls'. (messages.[{i}].role)")
                open_calls.remove(call_id)
                results.append(text)
            else:
                raise SimError("bad_request", 400, f"Invalid value: '{role}'. Supported values are: 'system', "
                               "'assistant', 'user', 'function', 'tool', and 'developer'.")
        fmt = body.get("response_format") or {}
        json_mode = fmt.get("type") in ("json_object", "json_schema") if isinstance(fmt, dict) else False
        stream_options = body.get("stream_options") or {}
        return SimRequest(
            model=model,
            prompt_texts=tuple(texts),
            last_user=last_user,
            max_tokens=int_field(body, "max_completion_tokens", "max_tokens"),
            json_mode=json_mode or wants_json("\n".join(system)),
            stream=bool(body.get("stream")),
            include_usage=bool(stream_options.get("include_usage")),
            tools=_tool_use(body, tuple(results) if messages[-1].get("role") == "tool" else ()),
            schema=_schema(fmt),
            images=tuple(images),
            reasoning=body.get("reasoning_effort") is not None,
            logprobs=_logprobs_flag(body),
            top_logprobs=body.get("top_logprobs"),
        )

    # -- success ---------------------------------------------------------------------------

    def usage(self, spec: ModelSpec, done: Completion) -> dict[str, Any]:
        return {
            "prompt_tokens": done.input_tokens,
            "completion_tokens": done.output_tokens,
            "total_tokens": done.total_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        }

    def extra_fields(self, spec: ModelSpec, done: Completion, rid: str) -> dict[str, Any]:
        return {"service_tier": "default", "system_fingerprint": "fp_sim"}

    def response(
        self, req: SimRequest, spec: ModelSpec, done: Completion, headers: dict[str, str]
    ) -> Response:
        rid = uuid.uuid4().hex
        body = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.model,
            "choices": [
                {
                    "index": 0,
                    "message": self.assistant_message(done),
                    "logprobs": logprobs_of([done.text], req.top_logprobs) if req.logprobs else None,
                    "finish_reason": _FINISH[done.finish],
                }
            ],
            "usage": self.usage(spec, done),
            **self.extra_fields(spec, done, rid),
        }
        headers["x-request-id"] = f"req_{rid}"
        return json_response(200, body, headers)

    def assistant_message(self, done: Completion) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": done.text or None, "refusal": None}
        if done.tool_calls:
            message["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in done.tool_calls
            ]
        else:
            message["content"] = done.text
        if done.reasoning:
            message["reasoning"] = done.reasoning
        return message

    def tool_call_frames(self, base: dict[str, Any], done: Completion) -> list[Frame]:
        """Each call: a chunk naming it (empty arguments), then its arguments in fragments."""
        frames = []
        for i, c in enumerate(done.tool_calls):
            head = {"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}
            frames.append(Frame(_sse(self.chunk(base, {"tool_calls": [head]}, None)), count_tokens(c.name)))
            for piece in fragments(c.arguments):
                delta = {"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
                frames.append(Frame(_sse(self.chunk(base, delta, None)), count_tokens(piece)))
        return frames

    def chunk(self, base: dict[str, Any], delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**base, "choices": [choice]}

    def stream(self, req: SimRequest, spec: ModelSpec, done: Completion) -> StreamPlan:
        rid = uuid.uuid4().hex
        base: dict[str, Any] = {
            "id": f"chatcmpl-{rid}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": req.model,
            "system_fingerprint": "fp_sim",
        }
        with_usage = self.stream_usage(req)
        if with_usage:
            base["usage"] = None
        frames = [Frame(_sse(self.chunk(base, {"role": "assistant", "content": ""}, None)))]
        if done.reasoning:
            frames.append(Frame(_sse(self.chunk(base, {"reasoning": done.reasoning}, None))))
        if done.tool_calls:
            frames += self.tool_call_frames(base, done)
        else:
            for piece in split_for_stream(done.text):
                chunk = self.chunk(base, {"content": piece}, None)
                if req.logprobs:
                    chunk["choices"][0]["logprobs"] = logprobs_of([piece], req.top_logprobs)
                frames.append(Frame(_sse(chunk), count_tokens(piece)))
        frames.append(Frame(_sse(self.finish_chunk(base, spec, done, rid))))
        if with_usage:
            frames.append(Frame(_sse({**base, "choices": [], "usage": self.usage(spec, done)})))
        frames.append(Frame(_DONE))
        return StreamPlan(self.preamble(), tuple(frames))

    def stream_usage(self, req: SimRequest) -> bool:
        return req.include_usage

    def finish_chunk(
        self, base: dict[str, Any], spec: ModelSpec, done: Completion, rid: str
    ) -> dict[str, Any]:
        return self.chunk(base, {}, _FINISH[done.finish])

    def preamble(self) -> tuple[bytes, ...]:
        return ()

    def models(self, catalog: Catalog, request: Request) -> Response:
        data = [self.model_entry(m) for m in catalog.live() if m.platform == self.platform]
        return json_response(200, {"object": "list", "data": data})

    def model_entry(self, m: ModelSpec) -> dict[str, Any]:
        return {"id": m.id, "object": "model", "created": 1_700_000_000, "owned_by": self.owned_by}

    # -- rate-limit headers ----------------------------------------------------------------

    def limit_headers(self, state: LimitState, now: float) -> dict[str, str]:
        h: dict[str, str] = {}
        if state.rpm is not None:
            h["x-ratelimit-limit-requests"] = str(state.rpm)
            h["x-ratelimit-remaining-requests"] = str(state.rpm_remaining)
            h["x-ratelimit-reset-requests"] = go_duration(state.rpm_reset_s)
        if state.tpm is not None:
            h["x-ratelimit-limit-tokens"] = str(state.tpm)
            h["x-ratelimit-remaining-tokens"] = str(state.tpm_remaining)
            h["x-ratelimit-reset-tokens"] = go_duration(state.tpm_reset_s)
        return h

    # -- errors ----------------------------------------------------------------------------

    def error(self, err: SimError) -> Response:
        message, etype, code, param = self.describe(err)
        body = {"error": {"message": message, "type": etype, "param": param, "code": code}}
        return self.error_response(err, body)

    def status_of(self, err: SimError) -> int:
        """The HTTP status this vendor uses for the error (the engine proposes one)."""
        return err.status

    def error_response(self, err: SimError, body: dict[str, Any]) -> Response:
        return json_response(self.status_of(err), body, retry_after_header(err.retry_after_s))

    def describe(self, err: SimError) -> tuple[str, str, str | None, str | None]:
        """(message, type, code, param) for an error, in OpenAI's words."""
        k, model = err.kind, err.model
        if k == "auth_missing":
            return ("You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    "invalid_request_error", None, None)
        if k == "auth_invalid":
            return (f"Incorrect API key provided: {err.key}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_request_error", "invalid_api_key", None)
        if k in ("model_not_found", "model_retired"):
            return (f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error", "model_not_found", None)
        if k == "context_too_long":
            window, used = err.context or (0, 0)
            return (f"This model's maximum context length is {window} tokens. However, your "
                    f"messages resulted in {used} tokens. Please reduce the length of the messages.",
                    "invalid_request_error", "context_length_exceeded", "messages")
        if k == "insufficient_quota":
            return ("You exceeded your current quota, please check your plan and billing details.",
                    "insufficient_quota", "insufficient_quota", None)
        if k == "payment_required":
            return ("Payment required: your account has no credit left.",
                    "billing_error", "payment_required", None)
        if k == "rate_limited":
            return (self.rate_limit_message(err), _limit_type(err), "rate_limit_exceeded", None)
        if k == "server_error":
            return (_SERVER_MESSAGES.get(err.status, "The server had an error while processing "
                    "your request. Sorry about that!"), "server_error", None, None)
        return (err.detail, "invalid_request_error", None, None)

    def rate_limit_message(self, err: SimError) -> str:
        lim = err.limit
        if lim is None:
            wait = go_duration(err.retry_after_s or 1.0)
            return f"Rate limit reached for {err.model}. Please try again in {wait}."
        dim = "requests per min (RPM)" if lim.exceeded == "requests" else "tokens per min (TPM)"
        limit = lim.rpm if lim.exceeded == "requests" else lim.tpm
        return (f"Rate limit reached for {err.model} in organization org-sim on {dim}: "
                f"Limit {limit}, Used {lim.used}, Requested {lim.requested}. Please try again in "
                f"{go_duration(lim.retry_after_s)}. Visit https://platform.openai.com/account/"
                "rate-limits to learn more.")


_SERVER_MESSAGES = {
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timeout.",
}


def _logprobs_flag(body: dict[str, Any]) -> bool:
    top = body.get("top_logprobs")
    if top is not None and (not isinstance(top, int) or not 0 <= top <= 20):
        raise SimError("bad_request", 400, "Invalid 'top_logprobs': integer between 0 and 20 expected.")
    if top is not None and not body.get("logprobs"):
        raise SimError("bad_request", 400, "Invalid value for 'top_logprobs': 'logprobs' must be set to true.")
    return bool(body.get("logprobs"))


def logprobs_of(pieces: list[str], top: int | None) -> dict[str, Any]:
    """Deterministic log-probabilities: one entry per word of the pieces."""
    content = []
    for piece in pieces:
        for i, token in enumerate(split_for_stream(piece) if piece else []):
            lp = -0.01 * (1 + (len(token) + i) % 7)
            alts = [{"token": token, "logprob": lp, "bytes": list(token.encode())}]
            alts += [{"token": f"{token.strip()}~{k}", "logprob": lp - k, "bytes": None} for k in range(1, top or 0)]
            content.append({"token": token, "logprob": lp, "bytes": list(token.encode()), "top_logprobs": alts[: top or 0]})
    return {"content": content, "refusal": None}


def _images(content: Any) -> list[str]:
    """Each image part of a user message: its media type (data URL) or "url"."""
    out = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "image_url":
            url = str((part.get("image_url") or {}).get("url") or "")
            if url.startswith("data:"):
                out.append(url[5:].split(";", 1)[0])
            elif url.startswith(("http://", "https://")):
                out.append("url")
            else:
                raise SimError("bad_request", 400, "Invalid image URL: expected a data URL or an http(s) URL.")
    return out


def _tool_use(body: dict[str, Any], results: tuple[str, ...]) -> ToolUse:
    raw_tools = body.get("tools")
    if raw_tools is not None and not isinstance(raw_tools, list):
        raise SimError("bad_request", 400, "Invalid type for 'tools': expected an array.")
    tools = []
    for i, t in enumerate(raw_tools or ()):
        fn = t.get("function") if isinstance(t, dict) and t.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise SimError("bad_request", 400, f"Missing required parameter: 'tools[{i}].function.name'.")
        tools.append(SimTool(fn["name"], fn.get("parameters") or {"type": "object", "properties": {}}))
    if "parallel_tool_calls" in body and not tools:
        raise SimError("bad_request", 400, "Invalid value for 'parallel_tool_calls': 'parallel_tool_calls' is "
                       "only allowed when 'tools' are specified.")
    choice = body.get("tool_choice")
    mode, forced = "auto", None
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise SimError("bad_request", 400, f"Invalid value: '{choice}'. Supported values are: 'none', 'auto', and 'required'.")
        mode = choice
    elif isinstance(choice, dict):
        mode, forced = "function", str((choice.get("function") or {}).get("name") or "")
        if forced not in {t.name for t in tools}:
            raise SimError("bad_request", 400, f"Invalid value for 'tool_choice': tool '{forced}' is not in 'tools'.")
    if choice is not None and not tools:
        raise SimError("bad_request", 400, "Invalid value for 'tool_choice': 'tool_choice' is only allowed when "
                       "'tools' are specified.")
    return ToolUse(tuple(tools), mode, forced, body.get("parallel_tool_calls") is not False, results)


def _schema(fmt: Any) -> dict[str, Any] | None:
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise SimError("bad_request", 400, "Missing required parameter: 'response_format.json_schema.name'.")
    schema = spec.get("schema")
    return schema if isinstance(schema, dict) else {"type": "object", "properties": {}}


def _limit_type(err: SimError) -> str:
    return err.limit.exceeded if err.limit and err.limit.exceeded else "requests"
