"""Anthropic Messages adapter on recorded vendor-shaped bodies."""
import json

import pytest

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
from providers.wire.anthropic import ADAPTER
from providers.wire.anthropic_messages import DEFAULT_MAX_TOKENS, JSON_INSTRUCTION

KEY = "sk-ant-api03-SECRETsecretSECRET-abc"
ENDPOINT = Endpoint("anthropic", "anthropic", "https://api.anthropic.com", api_key=KEY)

RESPONSE = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [{"type": "text", "text": "Hello"}, {"type": "tool_use", "id": "t", "name": "x",
                                                  "input": {}}, {"type": "text", "text": ", world"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
              "output_tokens": 6, "service_tier": "standard"},
}


def test_adapter_for_anthropic_protocol_is_this_module():
    assert adapter_for("anthropic") is ADAPTER


def test_build_call_moves_system_prompt_to_top_level():
    request = ChatRequest(
        messages=(Message("system", "Be brief."), Message("user", "Hi"), Message("assistant", "Yo"),
                  Message("system", "No emoji."), Message("user", "Again")),
        max_tokens=64, temperature=0.5, top_p=0.8, stop=("STOP",),
    )
    call = ADAPTER.build_call(request, "claude-sonnet-4-5", ENDPOINT)
    assert (call.method, call.url) == ("POST", "https://api.anthropic.com/v1/messages")
    assert call.headers["x-api-key"] == KEY
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert call.json == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "system": "Be brief.\n\nNo emoji.",
        "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"},
                     {"role": "user", "content": "Again"}],
        "temperature": 0.5,
        "top_p": 0.8,
        "stop_sequences": ["STOP"],
    }
    assert KEY not in repr(call) and KEY not in json.dumps(call.json)


def test_build_call_defaults_max_tokens_and_asks_for_json_in_system():
    request = ChatRequest(messages=(Message("user", "List 3 colors"),), response_format="json_object")
    call = ADAPTER.build_call(request, "claude-haiku-4-5", ENDPOINT, stream=True)
    assert call.json["max_tokens"] == DEFAULT_MAX_TOKENS
    assert call.json["system"] == JSON_INSTRUCTION
    assert call.json["stream"] is True
    assert "response_format" not in call.json


def test_temperature_is_clamped_to_anthropic_range():
    request = ChatRequest(messages=(Message("user", "x"),), temperature=1.7)
    assert ADAPTER.build_call(request, "m", ENDPOINT).json["temperature"] == 1.0


def test_parse_response_joins_text_blocks():
    r = ADAPTER.parse_response(RESPONSE, platform="anthropic", model="claude-sonnet-4-5")
    assert r.text == "Hello, world"
    assert r.usage == Usage(12, 6)
    assert r.finish_reason == "stop"
    assert r.model == "claude-sonnet-4-5"
    assert r.upstream_id == "msg_01XFDUDYJgAACzvnptvVoYEL"


@pytest.mark.parametrize(
    ("stop_reason", "expected"),
    [("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
     ("tool_use", "tool_calls"), ("refusal", "content_filter")],
)
def test_stop_reasons(stop_reason, expected):
    body = {**RESPONSE, "stop_reason": stop_reason}
    assert ADAPTER.parse_response(body, platform="anthropic", model="m").finish_reason == expected


def test_parse_response_without_content_is_server_error():
    with pytest.raises(ServerError):
        ADAPTER.parse_response({"id": "msg_x", "type": "message"}, platform="anthropic", model="m")


def _error(etype, message):
    return json.dumps({"type": "error", "error": {"type": etype, "message": message},
                       "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}).encode()


@pytest.mark.parametrize(
    ("status", "etype", "message", "cls"),
    [
        (401, "authentication_error", "invalid x-api-key", AuthenticationError),
        (403, "permission_error", "Your API key does not have permission to use the specified "
                                  "resource.", AuthenticationError),
        (400, "invalid_request_error", "max_tokens: Field required", BadRequestError),
        (413, "request_too_large", "Request exceeds the maximum allowed number of bytes.",
         BadRequestError),
        (400, "invalid_request_error", "prompt is too long: 215000 tokens > 200000 maximum",
         ContextTooLongError),
        (404, "not_found_error", "model: claude-3-5-sonnet-20240620", ModelNotFoundError),
        (402, "billing_error", "Payment required.", OutOfCreditError),
        (400, "invalid_request_error", "Your credit balance is too low to access the Anthropic "
                                       "API. Please go to Plans & Billing to upgrade or purchase "
                                       "credits.", OutOfCreditError),
        (429, "rate_limit_error", "This request would exceed the rate limit for your "
                                  "organization of 50 requests per minute.", RateLimitedError),
        (529, "overloaded_error", "Overloaded", OverloadedError),
        (500, "api_error", "Internal server error", ServerError),
        (503, "api_error", "Service unavailable", OverloadedError),
    ],
)
def test_error_taxonomy(status, etype, message, cls):
    err = ADAPTER.parse_error(status, {}, _error(etype, message), platform="anthropic", model="m")
    assert type(err) is cls
    assert (err.status, err.platform, err.model) == (status, "anthropic", "m")
    assert err.message == message


def test_rate_limit_retry_after_header():
    err = ADAPTER.parse_error(429, {"retry-after": "17", "anthropic-ratelimit-requests-remaining": "0"},
                              _error("rate_limit_error", "Rate limited"),
                              platform="anthropic", model="m")
    assert isinstance(err, RateLimitedError) and err.retry_after_s == 17.0


def test_non_json_5xx_is_server_error_and_key_is_redacted():
    err = ADAPTER.parse_error(502, {}, b"upstream connect error", platform="anthropic", model="m")
    assert type(err) is ServerError and err.message == "upstream connect error"
    leaked = ADAPTER.parse_error(401, {}, _error("authentication_error", f"invalid x-api-key: {KEY}"),
                                 platform="anthropic", model="m")
    assert "SECRET" not in leaked.message and leaked.message.startswith("invalid x-api-key")
