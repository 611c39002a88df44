"""OpenAI-protocol adapter (OpenAI, Groq, OpenRouter) on recorded vendor-shaped bodies."""
import json

import pytest

from providers.clock import FakeClock
from providers.types import (
    AuthenticationError,
    BadRequestError,
    ChatRequest,
    ContextTooLongError,
    Message,
    ModelNotFoundError,
    OutOfCreditError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    Usage,
)
from providers.wire.base import Endpoint
from providers.wire import adapter_for
from providers.wire.openai import ADAPTER, OpenAIAdapter

KEY = "sk-proj-SECRETsecretSECRET1234"
ENDPOINT = Endpoint("openai", "openai", "https://api.openai.com/v1/", api_key=KEY)
REQUEST = ChatRequest(
    messages=(Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Hello"),
              Message("user", "Again")),
    max_tokens=50, temperature=0.2, top_p=0.9, stop=("END",), response_format="json_object",
)

OPENAI_RESPONSE = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1741569952,
    "model": "gpt-4o-2024-08-06",
    "choices": [{
        "index": 0,
        "message": {"role": "assistant", "content": "Hello! How can I help?", "refusal": None,
                    "annotations": []},
        "logprobs": None,
        "finish_reason": "length",
    }],
    "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}},
    "service_tier": "default",
    "system_fingerprint": "fp_fc9f1d7035",
}


def test_adapter_for_openai_protocol_is_this_module():
    assert adapter_for("openai") is ADAPTER


def test_build_call_non_streaming():
    call = ADAPTER.build_call(REQUEST, "gpt-4o", ENDPOINT)
    assert (call.method, call.url) == ("POST", "https://api.openai.com/v1/chat/completions")
    assert call.headers["Authorization"] == f"Bearer {KEY}"
    assert call.json == {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                     {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Again"}],
        "stream": False,
        "max_tokens": 50,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": ["END"],
        "response_format": {"type": "json_object"},
    }


def test_build_call_streaming_asks_for_usage_and_omits_unset_fields():
    call = ADAPTER.build_call(ChatRequest(messages=(Message("user", "x"),)), "m", ENDPOINT, stream=True)
    assert call.json == {"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True,
                         "stream_options": {"include_usage": True}}


def test_key_only_in_auth_header():
    call = ADAPTER.build_call(REQUEST, "gpt-4o", ENDPOINT)
    assert KEY not in repr(call) and KEY not in json.dumps(call.json) and KEY not in call.url


def test_parse_openai_response():
    r = ADAPTER.parse_response(OPENAI_RESPONSE, platform="openai", model="gpt-4o")
    assert r.text == "Hello! How can I help?"
    assert r.usage == Usage(19, 10)
    assert r.finish_reason == "length"
    assert (r.platform, r.model) == ("openai", "gpt-4o")  # the argument, not the dated snapshot
    assert r.upstream_id == "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"


def test_parse_groq_response():
    body = {
        "id": "chatcmpl-f51b2cd2-bef7-417e-964e-a08f0b513c22", "object": "chat.completion",
        "created": 1730241104, "model": "llama-3.3-70b-versatile",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Fast."},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"queue_time": 0.037, "prompt_tokens": 18, "prompt_time": 0.000680,
                  "completion_tokens": 556, "completion_time": 0.463, "total_tokens": 574,
                  "total_time": 0.464},
        "system_fingerprint": "fp_179b0f92c9", "x_groq": {"id": "req_01jbd6g2qdfw2adyrt2az8hz4w"},
    }
    r = ADAPTER.parse_response(body, platform="groq", model="llama-3.3-70b-versatile")
    assert (r.text, r.usage, r.finish_reason) == ("Fast.", Usage(18, 556), "stop")


def test_parse_openrouter_response_with_null_content():
    body = {
        "id": "gen-1741569952-abc", "provider": "DeepInfra", "model": "meta-llama/llama-3-70b-instruct",
        "object": "chat.completion", "created": 1741569952,
        "choices": [{"logprobs": None, "finish_reason": "content_filter", "native_finish_reason": "content_filter",
                     "index": 0, "message": {"role": "assistant", "content": None, "refusal": None}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 0, "total_tokens": 7},
    }
    r = ADAPTER.parse_response(body, platform="openrouter", model="meta-llama/llama-3-70b-instruct")
    assert (r.text, r.finish_reason, r.usage) == ("", "content_filter", Usage(7, 0))


def test_parse_response_without_choices_is_server_error():
    with pytest.raises(ServerError):
        ADAPTER.parse_response({"id": "x", "choices": []}, platform="openai", model="m")


def test_openrouter_200_with_error_object_raises_typed_error():
    body = {"error": {"message": "Rate limit exceeded: free-models-per-min.", "code": 429}}
    with pytest.raises(RateLimitedError):
        ADAPTER.parse_response(body, platform="openrouter", model="m")


def _err(status, body, headers=None, platform="openai", adapter=ADAPTER):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return adapter.parse_error(status, headers or {}, raw, platform=platform, model="gpt-4o")


def _openai_error(message, etype, code=None, param=None):
    return {"error": {"message": message, "type": etype, "param": param, "code": code}}


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (401, _openai_error("Incorrect API key provided: sk-proj-****1234. You can find your API key "
                            "at https://platform.openai.com/account/api-keys.",
                            "invalid_request_error", "invalid_api_key"), AuthenticationError),
        (403, _openai_error("Country, region, or territory not supported", "request_forbidden",
                            "unsupported_country_region_territory"), AuthenticationError),
        (400, _openai_error("Invalid value for 'temperature'", "invalid_request_error", None,
                            "temperature"), BadRequestError),
        (422, {"detail": "Unprocessable Entity"}, BadRequestError),
        (400, _openai_error("This model's maximum context length is 128000 tokens. However, your "
                            "messages resulted in 130017 tokens. Please reduce the length of the "
                            "messages.", "invalid_request_error", "context_length_exceeded",
                            "messages"), ContextTooLongError),
        (404, _openai_error("The model `gpt-9` does not exist or you do not have access to it.",
                            "invalid_request_error", "model_not_found"), ModelNotFoundError),
        (429, _openai_error("You exceeded your current quota, please check your plan and billing "
                            "details.", "insufficient_quota", "insufficient_quota"), OutOfCreditError),
        (429, _openai_error("Rate limit reached for gpt-4o in organization org-x on tokens per min "
                            "(TPM): Limit 30000, Used 29000, Requested 2000. Please try again in "
                            "2s.", "tokens", "rate_limit_exceeded"), RateLimitedError),
        (503, _openai_error("The engine is currently overloaded, please try again later.",
                            "server_error"), OverloadedError),
        (500, _openai_error("The server had an error while processing your request. Sorry about "
                            "that!", "server_error"), ServerError),
        (502, b"<html><body>502 Bad Gateway</body></html>", ServerError),
    ],
)
def test_openai_error_taxonomy(status, body, cls):
    err = _err(status, body)
    assert type(err) is cls
    assert (err.status, err.platform, err.model) == (status, "openai", "gpt-4o")
    assert err.message and len(err.message) <= 300


def test_groq_decommissioned_model_is_model_not_found():
    body = _openai_error("The model `llama-3.1-70b-versatile` has been decommissioned and is no "
                         "longer supported.", "invalid_request_error", "model_decommissioned")
    assert type(_err(400, body, platform="groq")) is ModelNotFoundError


def test_openrouter_errors_with_integer_codes():
    credit = {"error": {"message": "Insufficient credits. Add more using https://openrouter.ai/"
                        "settings/credits", "code": 402}}
    assert type(_err(402, credit, platform="openrouter")) is OutOfCreditError
    assert type(_err(429, credit, platform="openrouter")) is OutOfCreditError
    context = {"error": {"code": 400, "message": "This endpoint's maximum context length is 8192 "
                         "tokens. However, you requested about 9000 tokens."}}
    assert type(_err(400, context, platform="openrouter")) is ContextTooLongError
    bad_model = {"error": {"message": "foo/bar is not a valid model ID", "code": 400}}
    assert type(_err(400, bad_model, platform="openrouter")) is ModelNotFoundError


@pytest.mark.parametrize(
    ("message", "expected"),
    [("Please try again in 18.642s.", 18.642), ("Please try again in 6m0s.", 360.0),
     ("Please try again in 120ms.", 0.12), ("Please try again in 1m30.5s.", 90.5)],
)
def test_rate_limit_retry_time_from_message(message, expected):
    err = _err(429, _openai_error(f"Rate limit reached. {message}", "requests", "rate_limit_exceeded"))
    assert err.retry_after_s == pytest.approx(expected)


def test_retry_headers_win_over_message():
    body = _openai_error("Please try again in 20s.", "requests", "rate_limit_exceeded")
    assert _err(429, body, {"Retry-After": "3"}).retry_after_s == 3.0
    assert _err(429, body, {"retry-after-ms": "1500", "retry-after": "3"}).retry_after_s == 1.5


def test_retry_after_http_date_uses_the_adapter_clock():
    clock = FakeClock(wall_start=1_445_412_470.0)  # 2015-10-21T07:27:50Z
    adapter = OpenAIAdapter(clock)
    err = _err(429, {"error": {"message": "slow down"}},
               {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, adapter=adapter)
    assert err.retry_after_s == pytest.approx(10.0)


def test_error_message_never_contains_a_key():
    body = _openai_error(f"Incorrect API key provided: {KEY}. You can find your API key at "
                         "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                         "invalid_api_key")
    err = _err(401, body)
    assert "SECRET" not in err.message and "SECRET" not in repr(err)
    assert err.message.startswith("Incorrect API key provided:")
    groq = _err(401, {"error": {"message": "Invalid API Key: gsk_abcDEF123456", "code": "invalid_api_key"}})
    assert "abcDEF" not in groq.message
