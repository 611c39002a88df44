"""The Gemini API (v1beta): `models/{model}:generateContent`, `:streamGenerateContent`,
`GET /v1beta/models`. Errors follow google.rpc.Status."""
from __future__ import annotations

import math
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
    dumps,
    int_field,
    json_response,
)
from providers.simulator.gemini_request import read_contents, read_schema, read_tools, reads_thinking, system_text
from providers.simulator.limiter import LimitState
from providers.simulator.text import Completion, count_tokens, split_for_stream, wants_json

_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 402: "FAILED_PRECONDITION",
    403: "PERMISSION_DENIED", 404: "NOT_FOUND", 409: "ABORTED", 429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED", 500: "INTERNAL", 501: "UNIMPLEMENTED", 503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_TYPE = "type.googleapis.com/google.rpc."
STREAM_ACTION = "streamGenerateContent"


def split_model_path(path: str) -> tuple[str, str]:
    """`gemini-2.5-flash:generateContent` (optionally prefixed `models/`) → (model, action)."""
    model, _, action = path.rpartition(":")
    return model.removeprefix("models/"), action


class GeminiDialect:
    platform = "gemini"

    def api_key(self, request: Request) -> str | None:
        key = request.headers.get("x-goog-api-key") or request.query_params.get("key") or ""
        return key.strip() or None

    def parse(self, body: Any, request: Request, path_model: str | None) -> SimRequest:
        if not isinstance(body, dict):
            raise SimError("bad_request", 400, "Invalid JSON payload received.")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents:
            raise SimError("bad_request", 400, "* GenerateContentRequest.contents: contents is not specified")
        system = system_text(body)
        conv = read_contents(contents)
        config = body.get("generationConfig") or body.get("generation_config") or {}
        mime = config.get("responseMimeType") or config.get("response_mime_type")
        results = tuple(conv.results) if conv.last_role == "user" else ()
        return SimRequest(
            model=path_model or "",
            prompt_texts=tuple(([system] if system else []) + conv.texts),
            last_user=conv.last_user,
            max_tokens=int_field(config, "maxOutputTokens", "max_output_tokens"),
            json_mode=mime == "application/json" or wants_json(system),
            stream=request.url.path.endswith(":" + STREAM_ACTION),
            sse=request.query_params.get("alt") == "sse",
            tools=read_tools(body, results),
            schema=read_schema(config),
            images=tuple(conv.images),
            reasoning=reads_thinking(config),
        )

    def _parts(self, done: Completion, text: str, *, first: bool, last: bool) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if first and done.reasoning:
            parts.append({"text": done.reasoning, "thought": True})
        if text or not done.tool_calls:
            parts.append({"text": text})
        if last:
            parts += [{"functionCall": {"name": c.name, "args": c.args}, "thoughtSignature": c.signature}
                      for c in done.tool_calls]
        return parts

    def _chunk(self, req: SimRequest, done: Completion, parts: list[dict[str, Any]], out: int,
               finish: bool, rid: str) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish:
            candidate["finishReason"] = _FINISH[done.finish]
        candidate["index"] = 0
        thoughts = count_tokens(done.reasoning)
        usage: dict[str, Any] = {
            "promptTokenCount": done.input_tokens,
            "candidatesTokenCount": out - thoughts if finish else out,
            "totalTokenCount": done.input_tokens + out,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": done.input_tokens}],
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": req.model, "responseId": rid}

    def response(
        self, req: SimRequest, spec: ModelSpec, done: Completion, headers: dict[str, str]
    ) -> Response:
        parts = self._parts(done, done.text, first=True, last=True)
        body = self._chunk(req, done, parts, done.output_tokens, True, uuid.uuid4().hex[:22])
        return json_response(200, body, headers)

    def stream(self, req: SimRequest, spec: ModelSpec, done: Completion) -> StreamPlan:
        rid = uuid.uuid4().hex[:22]
        pieces = [""] if done.tool_calls and not done.text else split_for_stream(done.text)
        chunks, out = [], 0
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            out = done.output_tokens if last else out + count_tokens(piece)
            parts = self._parts(done, piece, first=i == 0, last=last)
            chunks.append((dumps(self._chunk(req, done, parts, out, last, rid)), count_tokens(piece)))
        return _sse_plan(chunks) if req.sse else _array_plan(chunks)

    def models(self, catalog: Catalog, request: Request) -> Response:
        live = [m for m in catalog.live() if m.platform == self.platform]
        try:
            size = min(1000, max(1, int(request.query_params.get("pageSize", 50))))
            start = int(request.query_params.get("pageToken") or 0)
        except ValueError:
            return self.error(SimError("bad_request", 400, "Invalid pageSize or pageToken"))
        page = live[start : start + size]
        body: dict[str, Any] = {"models": [self.model_entry(m) for m in page]}
        if start + size < len(live):
            body["nextPageToken"] = str(start + size)
        return json_response(200, body)

    def model_entry(self, m: ModelSpec) -> dict[str, Any]:
        return model_resource(m)

    def limit_headers(self, state: LimitState, now: float) -> dict[str, str]:
        return {}  # Gemini reports limits only in its 429 body

    def error(self, err: SimError) -> Response:
        status, message, details = self.describe(err)
        error: dict[str, Any] = {
            "code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN"),
        }
        if details:
            error["details"] = details
        return json_response(status, {"error": error})

    def describe(self, err: SimError) -> tuple[int, str, list[dict[str, Any]]]:
        """(status, message, details) in Google's words. Like the real API, a missing key is
        403 PERMISSION_DENIED and a bad key is 400 INVALID_ARGUMENT (reason API_KEY_INVALID)."""
        k = err.kind
        if k == "auth_missing":
            return 403, ("Method doesn't allow unregistered callers (callers without established "
                         "identity). Please use API Key or other form of API consumer identity "
                         "to call this API."), []
        if k == "auth_invalid":
            info = {"@type": _TYPE + "ErrorInfo", "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}
            return 400, f"API key not valid. Please pass a valid API key. ({err.key})", [info]
        if k in ("model_not_found", "model_retired"):
            return 404, (f"models/{err.model} is not found for API version v1beta, or is not "
                         "supported for generateContent. Call ListModels to see the list of "
                         "available models and their supported methods."), []
        if k == "context_too_long":
            window, used = err.context or (0, 0)
            return 400, (f"The input token count ({used}) exceeds the maximum number of tokens "
                         f"allowed ({window})."), []
        if k in ("rate_limited", "insufficient_quota"):
            return 429, ("You exceeded your current quota, please check your plan and billing "
                         "details. For more information on this error, head to: "
                         "https://ai.google.dev/gemini-api/docs/rate-limits."), self._quota_details(err)
        if k == "server_error":
            return err.status, _SERVER_MESSAGES.get(err.status, _SERVER_MESSAGES[500]), []
        return err.status, err.detail or "Request contains an invalid argument.", []

    def _quota_details(self, err: SimError) -> list[dict[str, Any]]:
        lim = err.limit
        metric = "requests" if lim is None or lim.exceeded == "requests" else "input_token_count"
        quota = lim.rpm if lim is not None and lim.exceeded == "requests" else (lim.tpm if lim else None)
        details: list[dict[str, Any]] = [{
            "@type": _TYPE + "QuotaFailure",
            "violations": [{
                "quotaMetric": f"generativelanguage.googleapis.com/generate_content_{metric}",
                "quotaId": f"GenerateContent{metric.title().replace('_', '')}PerMinutePerProjectPerModel",
                "quotaDimensions": {"location": "global", "model": err.model},
                **({"quotaValue": str(quota)} if quota is not None else {}),
            }],
        }]
        wait = lim.retry_after_s if lim is not None else err.retry_after_s
        if wait is not None:
            details.append({"@type": _TYPE + "RetryInfo", "retryDelay": f"{math.ceil(wait)}s"})
        return details


_SERVER_MESSAGES = {
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "The request timed out. Please try again.",
}


def model_resource(m: ModelSpec) -> dict[str, Any]:
    return {
        "name": f"models/{m.id}",
        "version": "001",
        "displayName": m.id,
        "description": f"Simulated {m.id}",
        "inputTokenLimit": m.context_window,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
    }


def _sse_plan(chunks: list[tuple[bytes, int]]) -> StreamPlan:
    return StreamPlan((), tuple(Frame(b"data: " + c + b"\r\n\r\n", n) for c, n in chunks))


def _array_plan(chunks: list[tuple[bytes, int]]) -> StreamPlan:
    frames = [Frame((b"[" if i == 0 else b",\r\n") + c, n) for i, (c, n) in enumerate(chunks)]
    frames.append(Frame(b"]"))
    return StreamPlan((), tuple(frames), media_type="application/json")
