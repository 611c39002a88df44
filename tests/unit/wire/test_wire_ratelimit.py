"""Rate-limit headers and retry times (pure; wall time passed in)."""
import pytest

from providers.wire.ratelimit import (
    RateLimitInfo,
    parse_duration,
    parse_http_date,
    parse_rate_limit_headers,
    parse_retry_after,
    parse_rfc3339,
)

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("6m0s", 360.0), ("1.5s", 1.5), ("12ms", 0.012), ("2h3m", 7380.0), ("2m59.56s", 179.56),
     ("7.66s", 7.66), ("20", 20.0), ("0s", 0.0), ("1h0m0.5s", 3600.5), ("250us", 0.00025)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 minutes", "1x", "-", "s"])
def test_parse_duration_rejects_garbage(text):
    assert parse_duration(text) is None


def test_http_date_and_rfc3339_are_relative_to_now_and_never_negative():
    assert parse_http_date("Thu, 01 Jan 2026 00:00:30 GMT", NOW) == 30.0
    assert parse_http_date("Wed, 31 Dec 2025 23:00:00 GMT", NOW) == 0.0
    assert parse_http_date("not a date", NOW) is None
    assert parse_rfc3339("2026-01-01T00:00:12Z", NOW) == 12.0
    assert parse_rfc3339("2026-01-01T01:00:12+01:00", NOW) == 12.0
    assert parse_rfc3339("2026-01-01T00:00:12", NOW) is None  # no zone: ambiguous
    assert parse_rfc3339("yesterday", NOW) is None


def test_openai_and_groq_headers():
    headers = {
        "x-ratelimit-limit-requests": "10000",
        "x-ratelimit-remaining-requests": "9999",
        "x-ratelimit-reset-requests": "6ms",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "29975",
        "X-RateLimit-Reset-Tokens": "2m59.56s",
    }
    assert parse_rate_limit_headers(headers, NOW) == RateLimitInfo(
        10000, 9999, pytest.approx(0.006), 30000, 29975, pytest.approx(179.56)
    )


def test_anthropic_headers():
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-01-01T00:00:01Z",
        "anthropic-ratelimit-tokens-limit": "40000",
        "anthropic-ratelimit-tokens-remaining": "38000",
        "anthropic-ratelimit-tokens-reset": "2026-01-01T00:00:03Z",
        "anthropic-ratelimit-input-tokens-remaining": "39000",
    }
    assert parse_rate_limit_headers(headers, NOW) == RateLimitInfo(50, 49, 1.0, 40000, 38000, 3.0)


def test_anthropic_split_token_limits_take_the_tighter():
    headers = {
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-input-tokens-reset": "2026-01-01T00:00:02Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "100",
        "anthropic-ratelimit-output-tokens-reset": "2026-01-01T00:00:05Z",
    }
    assert parse_rate_limit_headers(headers, NOW) == RateLimitInfo(
        None, None, None, 8000, 100, 5.0
    )


def test_openrouter_headers_reset_in_epoch_ms():
    headers = {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Reset": str(int((NOW + 4) * 1000))}
    assert parse_rate_limit_headers(headers, NOW) == RateLimitInfo(20, 0, 4.0)


def test_no_rate_limit_headers():
    assert parse_rate_limit_headers({"content-type": "application/json"}, NOW) is None


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"retry-after": "12"}, "", 12.0),
        ({"Retry-After": "0.5"}, "", 0.5),
        ({"retry-after": "Thu, 01 Jan 2026 00:01:00 GMT"}, "", 60.0),
        ({"retry-after-ms": "250", "retry-after": "1"}, "", 0.25),
        ({"retry-after": "garbage"}, "Please try again in 1m30s.", 90.0),
        ({}, '{"error": {"message": "Rate limit reached. Please try again in 120ms."}}', 0.12),
        ({}, '{"error": {"details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", '
             '"retryDelay": "34.5s"}]}}', 34.5),
        ({}, '{"error": {"message": "slow down"}}', None),
    ],
)
def test_parse_retry_after(headers, body, expected):
    got = parse_retry_after(headers, body, NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)
