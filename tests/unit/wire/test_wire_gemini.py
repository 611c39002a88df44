"""Gemini generateContent adapter on recorded vendor-shaped bodies."""
import json

import pytest

from providers.types import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextTooLongError,
    Message,
    ModelNotFoundError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    Usage,
)
from providers.wire.base import Endpoint
from providers.wire import adapter_for
from providers.wire.gemini import ADAPTER

KEY = "AIzaSyD-SECRETsecretSECRETsecret123"
ENDPOINT = Endpoint("gemini", "gemini", "https://generativelanguage.googleapis.com", api_key=KEY)
BASE = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash"

RESPONSE = {
    "candidates": [{
        "content": {"parts": [{"text": "thinking about it", "thought": True},
                              {"text": "Hello"}, {"text": " there"}], "role": "model"},
        "finishReason": "STOP",
        "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 8, "candidatesTokenCount": 5, "totalTokenCount": 41,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 8}],
                      "thoughtsTokenCount": 28},
    "modelVersion": "gemini-2.5-flash",
    "responseId": "mKxCaLmUNPWVjrEPqYvO0QQ",
}


def test_adapter_for_gemini_protocol_is_this_module():
    assert adapter_for("gemini") is ADAPTER


def test_build_call():
    request = ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Yo"),
                  Message("user", "JSON please")),
        max_tokens=100, temperature=0.3, top_p=0.95, stop=("END",), response_format="json_object",
    )
    call = ADAPTER.build_call(request, "gemini-2.5-flash", ENDPOINT)
    assert (call.method, call.url) == ("POST", BASE + ":generateContent")
    assert call.headers["x-goog-api-key"] == KEY
    assert call.json == {
        "contents": [{"role": "user", "parts": [{"text": "Hi"}]},
                     {"role": "model", "parts": [{"text": "Yo"}]},
                     {"role": "user", "parts": [{"text": "JSON please"}]}],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.3, "topP": 0.95,
                             "stopSequences": ["END"], "responseMimeType": "application/json"},
    }
    assert KEY not in repr(call) and KEY not in call.url and KEY not in json.dumps(call.json)


def test_build_streaming_call_accepts_models_prefix():
    call = ADAPTER.build_call(ChatRequest(messages=(Message("user", "x"),)),
                              "models/gemini-2.5-flash", ENDPOINT, stream=True)
    assert call.url == BASE + ":streamGenerateContent?alt=sse"
    assert call.json == {"contents": [{"role": "user", "parts": [{"text": "x"}]}]}


def test_parse_response_skips_thoughts_and_counts_thinking_as_output():
    r = ADAPTER.parse_response(RESPONSE, platform="gemini", model="gemini-2.5-flash")
    assert r.text == "Hello there"
    assert r.usage == Usage(8, 5 + 28, reasoning_tokens=28)
    assert (r.finish_reason, r.model, r.upstream_id) == ("stop", "gemini-2.5-flash",
                                                         "mKxCaLmUNPWVjrEPqYvO0QQ")


@pytest.mark.parametrize(("reason", "expected"),
                         [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
                          ("RECITATION", "content_filter"), ("STOP", "stop")])
def test_finish_reasons(reason, expected):
    body = {**RESPONSE, "candidates": [{**RESPONSE["candidates"][0], "finishReason": reason}]}
    assert ADAPTER.parse_response(body, platform="gemini", model="m").finish_reason == expected


def test_blocked_prompt_is_content_filter_with_usage():
    body = {"promptFeedback": {"blockReason": "SAFETY"},
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}
    r = ADAPTER.parse_response(body, platform="gemini", model="m")
    assert (r.text, r.finish_reason, r.usage) == ("", "content_filter", Usage(9, 0))


def test_response_without_candidates_is_server_error():
    with pytest.raises(ServerError):
        ADAPTER.parse_response({"usageMetadata": {}}, platform="gemini", model="m")


def _error(code, status, message, details=()):
    error = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}).encode()


_TYPE = "type.googleapis.com/google.rpc."
API_KEY_INVALID = {"@type": _TYPE + "ErrorInfo", "reason": "API_KEY_INVALID",
                   "domain": "googleapis.com",
                   "metadata": {"service": "generativelanguage.googleapis.com"}}


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (400, _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                     [API_KEY_INVALID]), AuthenticationError),
        (403, _error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
         AuthenticationError),
        (400, _error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
         BadRequestError),
        (400, _error(400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum "
                     "number of tokens allowed (1048576)."), ContextTooLongError),
        (404, _error(404, "NOT_FOUND", "models/gemini-1.5-pro is not found for API version v1beta, "
                     "or is not supported for generateContent."), ModelNotFoundError),
        (429, _error(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota."),
         RateLimitedError),
        (503, _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
         OverloadedError),
        (500, _error(500, "INTERNAL", "An internal error has occurred."), ServerError),
        (504, _error(504, "DEADLINE_EXCEEDED", "The request timed out."), ServerError),
    ],
)
def test_error_taxonomy(status, body, cls):
    err = ADAPTER.parse_error(status, {}, body, platform="gemini", model="gemini-2.5-flash")
    assert type(err) is cls
    assert (err.status, err.platform, err.model) == (status, "gemini", "gemini-2.5-flash")


def test_rate_limit_retry_delay_from_retry_info():
    details = [
        {"@type": _TYPE + "QuotaFailure", "violations": [{
            "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
            "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
            "quotaValue": "10"}]},
        {"@type": _TYPE + "Help", "links": [{"description": "Learn more",
                                             "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
        {"@type": _TYPE + "RetryInfo", "retryDelay": "7s"},
    ]
    err = ADAPTER.parse_error(429, {}, _error(429, "RESOURCE_EXHAUSTED", "Quota exceeded", details),
                              platform="gemini", model="m")
    assert isinstance(err, RateLimitedError) and err.retry_after_s == 7.0


def test_streaming_error_array_and_echoed_key_is_redacted():
    body = b"[" + _error(400, "INVALID_ARGUMENT", f"API key not valid ({KEY}).", [API_KEY_INVALID]) + b"]"
    err = ADAPTER.parse_error(400, {}, body, platform="gemini", model="m")
    assert type(err) is AuthenticationError
    assert "SECRET" not in err.message and "API key not valid" in err.message
