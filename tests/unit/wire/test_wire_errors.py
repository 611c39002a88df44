"""Shared error-mapping helpers: redaction, message trimming, status defaults, chunk loading."""
import pytest

from providers.types import ServerError
from providers.wire.errors import (
    MAX_MESSAGE_CHARS,
    REDACTED,
    decode_body,
    kind_for_status,
    load_chunk,
    make_error,
    redact,
    short_message,
)


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcDEF1234567890abcdef",
        "sk-ant-api03-abcDEF_12-34",
        "sk-or-v1-0123456789abcdef0123",
        "gsk_abcDEF1234567890",
        "AIzaSyD-abcDEF1234567890_x",
        "sk-proj-****************************abcd",
    ],
)
def test_key_shapes_are_redacted(secret):
    out = redact(f"Incorrect key {secret}. Get a new one.")
    assert secret not in out and REDACTED in out and out.endswith(". Get a new one.")


@pytest.mark.parametrize(
    "text",
    [
        "Incorrect API key provided: my-custom-key-123.",
        "User not found for API key my-custom-key-123",
        "invalid x-api-key: my-custom-key-123",
        "Authorization: Bearer my-custom-key-123",
    ],
)
def test_keys_after_key_words_are_redacted(text):
    assert "my-custom-key-123" not in redact(text)


def test_ordinary_words_survive_redaction():
    text = "The task-scheduler failed; API key not valid. Please pass a valid API key."
    assert redact(text) == text


def test_short_message_is_one_bounded_line():
    msg = short_message("line one\n  line two\t" + "x" * 1000)
    assert "\n" not in msg and msg.startswith("line one line two ")
    assert len(msg) == MAX_MESSAGE_CHARS and msg.endswith("…")


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, "bad_request"), (401, "authentication"), (402, "out_of_credit"), (403, "authentication"),
     (404, "model_not_found"), (408, "timeout"), (409, "bad_request"), (422, "bad_request"),
     (429, "rate_limited"), (500, "server_error"), (502, "server_error"), (503, "overloaded"),
     (529, "overloaded"), (None, "server_error")],
)
def test_kind_for_status(status, kind):
    assert kind_for_status(status) == kind


def test_make_error_falls_back_to_kind_name_and_keeps_fields():
    err = make_error("rate_limited", "", platform="groq", model="m", status=429, retry_after_s=2.0)
    assert (err.kind, err.message, err.platform, err.status, err.retry_after_s) == (
        "rate_limited", "rate limited", "groq", 429, 2.0)


def test_decode_body_never_raises():
    assert decode_body(b"\xff\xfe not json") == ({}, "\ufffd\ufffd not json")
    assert decode_body(b'[{"error": {"code": 1}}]')[0] == {"error": {"code": 1}}
    assert decode_body(b'"just a string"')[0] == {}


def test_load_chunk_malformed_is_server_error():
    assert load_chunk('{"a": 1}', platform="p", model="m") == {"a": 1}
    for bad in ('{"a": ', "[1, 2]"):
        with pytest.raises(ServerError, match="malformed stream chunk"):
            load_chunk(bad, platform="p", model="m")
