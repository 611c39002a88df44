"""Groq and OpenRouter: the OpenAI protocol with each vendor's own quirks."""
from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from providers.catalog import Catalog, ModelSpec
from providers.simulator.core import SimError, SimRequest, json_response
from providers.simulator.limiter import LimitState, go_duration
from providers.simulator.openai_proto import OpenAIDialect
from providers.simulator.text import Completion


class GroqDialect(OpenAIDialect):
    """Groq: `x_groq` metadata (usage in the last stream chunk), 400 `model_decommissioned`."""

    platform = "groq"
    owned_by = "Meta"

    def usage(self, spec: ModelSpec, done: Completion) -> dict[str, Any]:
        completion_time = done.output_tokens / max(spec.tokens_per_s, 1e-9)
        return {
            "queue_time": 0.0001,
            "prompt_tokens": done.input_tokens,
            "prompt_time": 0.001,
            "completion_tokens": done.output_tokens,
            "completion_time": round(completion_time, 6),
            "total_tokens": done.total_tokens,
            "total_time": round(completion_time + 0.001, 6),
        }

    def extra_fields(self, spec: ModelSpec, done: Completion, rid: str) -> dict[str, Any]:
        return {"system_fingerprint": "fp_sim", "x_groq": {"id": f"req_{rid}"}, "service_tier": "on_demand"}

    def finish_chunk(
        self, base: dict[str, Any], spec: ModelSpec, done: Completion, rid: str
    ) -> dict[str, Any]:
        chunk = super().finish_chunk(base, spec, done, rid)
        chunk["x_groq"] = {"id": f"req_{rid}", "usage": self.usage(spec, done)}
        return chunk

    def model_entry(self, m: ModelSpec) -> dict[str, Any]:
        return {**super().model_entry(m), "active": True, "context_window": m.context_window}

    def status_of(self, err: SimError) -> int:
        return 400 if err.kind == "model_retired" else err.status

    def error(self, err: SimError) -> Response:
        message, etype, code, _param = self.describe(err)
        return self.error_response(err, {"error": {"message": message, "type": etype, "code": code}})

    def describe(self, err: SimError) -> tuple[str, str, str | None, str | None]:
        if err.kind == "auth_missing":
            return ("Invalid API Key", "invalid_request_error", "invalid_api_key", None)
        if err.kind == "auth_invalid":
            return (f"Invalid API Key: {err.key}", "invalid_request_error", "invalid_api_key", None)
        if err.kind == "model_retired":
            return (f"The model `{err.model}` has been decommissioned and is no longer supported. "
                    "Please refer to https://console.groq.com/docs/deprecations for a "
                    "recommendation on which model to use instead.",
                    "invalid_request_error", "model_decommissioned", None)
        if err.kind == "context_too_long":
            return ("Please reduce the length of the messages or completion.",
                    "invalid_request_error", "context_length_exceeded", "messages")
        return super().describe(err)

    def rate_limit_message(self, err: SimError) -> str:
        lim = err.limit
        if lim is None:
            return super().rate_limit_message(err)
        dim = "requests per minute (RPM)" if lim.exceeded == "requests" else "tokens per minute (TPM)"
        limit = lim.rpm if lim.exceeded == "requests" else lim.tpm
        return (f"Rate limit reached for model `{err.model}` in organization `org_sim` service "
                f"tier `on_demand` on {dim}: Limit {limit}, Used {lim.used}, Requested "
                f"{lim.requested}. Please try again in {go_duration(lim.retry_after_s)}. Need "
                "more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing")


class OpenRouterDialect(OpenAIDialect):
    """OpenRouter: `{"error": {"message", "code": <int>}}`, usage in every stream,
    `: OPENROUTER PROCESSING` comments, 402 for credits, `X-RateLimit-*` headers."""

    platform = "openrouter"

    def usage(self, spec: ModelSpec, done: Completion) -> dict[str, Any]:
        cost = spec.cost_usd(done.input_tokens, done.output_tokens)
        return {**super().usage(spec, done), "cost": round(cost, 10), "is_byok": False}

    def extra_fields(self, spec: ModelSpec, done: Completion, rid: str) -> dict[str, Any]:
        return {"provider": "Simulator", "system_fingerprint": None}

    def stream_usage(self, req: SimRequest) -> bool:
        return True

    def preamble(self) -> tuple[bytes, ...]:
        return (b": OPENROUTER PROCESSING\n\n",)

    def models(self, catalog: Catalog, request: Request) -> Response:
        data = [self.model_entry(m) for m in catalog.live() if m.platform == self.platform]
        return json_response(200, {"data": data})

    def model_entry(self, m: ModelSpec) -> dict[str, Any]:
        return {
            "id": m.id,
            "canonical_slug": m.id,
            "name": m.id,
            "created": 1_700_000_000,
            "context_length": m.context_window,
            "pricing": {
                "prompt": f"{m.input_per_1m / 1e6:.10f}".rstrip("0"),
                "completion": f"{m.output_per_1m / 1e6:.10f}".rstrip("0"),
            },
        }

    def limit_headers(self, state: LimitState, now: float) -> dict[str, str]:
        if state.rpm is None:
            return {}
        return {
            "x-ratelimit-limit": str(state.rpm),
            "x-ratelimit-remaining": str(state.rpm_remaining),
            "x-ratelimit-reset": str(int((now + state.rpm_reset_s) * 1000)),
        }

    def status_of(self, err: SimError) -> int:
        if err.kind == "model_not_found":
            return 400
        if err.kind == "model_retired":
            return 404
        return err.status

    def error(self, err: SimError) -> Response:
        status = self.status_of(err)
        return self.error_response(err, {"error": {"message": self.message(err), "code": status}})

    def message(self, err: SimError) -> str:
        k = err.kind
        if k == "auth_missing":
            return "No auth credentials found"
        if k == "auth_invalid":
            return f"User not found for API key {err.key}"
        if k == "model_not_found":
            return f"{err.model} is not a valid model ID"
        if k == "model_retired":
            return f"No endpoints found for {err.model}."
        if k == "context_too_long":
            window, used = err.context or (0, 0)
            return (f"This endpoint's maximum context length is {window} tokens. However, you "
                    f"requested about {used} tokens ({used} of text input). Please reduce the "
                    "length of either one, or use the \"middle-out\" transform to compress your "
                    "prompt automatically.")
        if k in ("payment_required", "insufficient_quota"):
            return ("Insufficient credits. Add more using https://openrouter.ai/settings/credits")
        if k == "rate_limited":
            wait = err.limit.retry_after_s if err.limit else (err.retry_after_s or 1.0)
            return f"Rate limit exceeded: {err.model}. Please try again in {go_duration(wait)}."
        if k == "server_error":
            return "Provider returned error"
        return err.detail
