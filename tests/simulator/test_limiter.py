"""The per-model limiter: sliding window, 429s with each vendor's headers and bodies."""
from __future__ import annotations

from datetime import datetime

import pytest

from providers.catalog import ModelSpec
from providers.clock import FakeClock
from providers.simulator.limiter import Limiter, go_duration
from tests.simulator._helpers import ANTHROPIC, BEARER, GEMINI, user

SPEC = ModelSpec("openai", "m", 1, 1, 1000, rpm=2, tpm=100)


def test_requests_per_window_then_reset():
    clock = FakeClock()
    lim = Limiter(clock, window_s=10)
    first = lim.admit(SPEC, 10)
    assert not first.refused and first.rpm_remaining == 1 and first.tpm_remaining == 90
    clock.advance(4)
    assert not lim.admit(SPEC, 10).refused
    refused = lim.admit(SPEC, 10)
    assert refused.exceeded == "requests" and refused.retry_after_s == pytest.approx(6)
    clock.advance(6)  # the first request leaves the window
    assert not lim.admit(SPEC, 10).refused


def test_tokens_per_window_waits_for_enough_tokens_to_expire():
    clock = FakeClock()
    lim = Limiter(clock, window_s=10)
    spec = ModelSpec("openai", "m", 1, 1, 1000, tpm=100)
    lim.admit(spec, 60)
    clock.advance(2)
    lim.admit(spec, 30)
    refused = lim.admit(spec, 50)
    assert refused.exceeded == "tokens" and refused.used == 90 and refused.requested == 50
    assert refused.retry_after_s == pytest.approx(8)  # once the 60 expire, 30 + 50 fit


def test_disabled_limiter_and_models_without_limits_admit_everything():
    lim = Limiter(FakeClock(), enabled=False)
    assert all(lim.admit(SPEC, 10**6) is None for _ in range(5))
    assert Limiter(FakeClock()).admit(ModelSpec("x", "y", 1, 1, 10), 5) is None


@pytest.mark.parametrize("seconds,text", [
    (0.012, "12ms"), (1.5, "1.5s"), (60, "1m0s"), (390.5, "6m30.5s"), (0, "0ms")])
def test_go_duration(seconds, text):
    assert go_duration(seconds) == text


async def _set_limits(client, **body):
    r = await client.post("/_sim/limits", json=body)
    assert r.status_code == 200
    return r.json()


async def test_openai_429_headers_and_message(client, clock):
    await _set_limits(client, platform="openai", model="gpt-4o", rpm=2, window_s=2)
    ok = [await client.post("/v1/chat/completions", headers=BEARER,
                            json={"model": "gpt-4o", "messages": user("x")}) for _ in range(2)]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["1", "0"]
    assert ok[0].headers["x-ratelimit-limit-requests"] == "2"
    assert ok[0].headers["x-ratelimit-reset-requests"] == "2s"
    assert int(ok[1].headers["x-ratelimit-remaining-tokens"]) < 30000
    clock.advance(0.5)
    r = await client.post("/v1/chat/completions", headers=BEARER,
                          json={"model": "gpt-4o", "messages": user("x")})
    assert r.status_code == 429
    err = r.json()["error"]
    assert err["code"] == "rate_limit_exceeded" and err["type"] == "requests"
    assert "Rate limit reached for gpt-4o" in err["message"]
    assert "Please try again in 1.5s." in err["message"]
    assert r.headers["retry-after"] == "2" and r.headers["x-ratelimit-reset-requests"] == "1.5s"
    clock.advance(1.5)
    r = await client.post("/v1/chat/completions", headers=BEARER,
                          json={"model": "gpt-4o", "messages": user("x")})
    assert r.status_code == 200


async def test_groq_token_limit(client):
    await _set_limits(client, platform="groq", model="llama-8b", tpm=60)
    first = await client.post("/openai/v1/chat/completions", headers=BEARER,
                              json={"model": "llama-8b", "messages": user("a")})
    assert first.status_code == 200
    r = await client.post("/openai/v1/chat/completions", headers=BEARER,
                          json={"model": "llama-8b", "messages": user("a")})
    assert r.status_code == 429 and r.json()["error"]["type"] == "tokens"
    assert "tokens per minute (TPM): Limit 60" in r.json()["error"]["message"]
    assert r.headers["x-ratelimit-limit-tokens"] == "60"


async def test_anthropic_429(client, clock):
    await _set_limits(client, platform="anthropic", model="haiku", rpm=1, window_s=30)
    body = {"model": "haiku", "max_tokens": 5, "messages": user("x")}
    ok = await client.post("/v1/messages", headers=ANTHROPIC, json=body)
    assert ok.headers["anthropic-ratelimit-requests-remaining"] == "0"
    r = await client.post("/v1/messages", headers=ANTHROPIC, json=body)
    assert r.status_code == 429
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"
    assert r.headers["retry-after"] == "30"
    reset = datetime.fromisoformat(r.headers["anthropic-ratelimit-requests-reset"])
    assert reset.timestamp() == pytest.approx(clock.time() + 30, abs=1)


async def test_gemini_429_resource_exhausted_with_retry_info(client, clock):
    await _set_limits(client, platform="gemini", model="flash", rpm=1, window_s=7)
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    assert (await client.post("/v1beta/models/flash:generateContent", headers=GEMINI, json=body)).status_code == 200
    r = await client.post("/v1beta/models/flash:generateContent", headers=GEMINI, json=body)
    err = r.json()["error"]
    assert r.status_code == 429 and err["status"] == "RESOURCE_EXHAUSTED" and err["code"] == 429
    kinds = {d["@type"].rsplit(".", 1)[-1]: d for d in err["details"]}
    assert kinds["RetryInfo"]["retryDelay"] == "7s"
    assert kinds["QuotaFailure"]["violations"][0]["quotaValue"] == "1"


async def test_no_limits_and_reset(make_client):
    client, _ = make_client(limits_enabled=False)
    await _set_limits(client, platform="openai", model="gpt-4o", rpm=1)
    for _ in range(3):
        r = await client.post("/v1/chat/completions", headers=BEARER,
                              json={"model": "gpt-4o", "messages": user("x")})
        assert r.status_code == 200 and "x-ratelimit-limit-requests" not in r.headers
    client, _ = make_client()
    await _set_limits(client, platform="openai", model="gpt-4o", rpm=1)
    await client.post("/v1/chat/completions", headers=BEARER, json={"model": "gpt-4o", "messages": user("x")})
    await client.post("/_sim/reset")
    view = await _set_limits(client)
    assert {"platform": "openai", "model": "gpt-4o", "rpm": 500, "tpm": 30000, "window_s": 60.0} in view["models"]
    r = await client.post("/v1/chat/completions", headers=BEARER, json={"model": "gpt-4o", "messages": user("x")})
    assert r.status_code == 200


async def test_limits_endpoint_validates(client):
    assert (await client.post("/_sim/limits", json={"platform": "openai", "rpm": 1})).status_code == 400
    assert (await client.post("/_sim/limits", json={"platform": "openai", "model": "zzz", "rpm": 1})).status_code == 400
    assert (await client.post("/_sim/limits", json={"rpm": -1})).status_code == 400
    view = await _set_limits(client, window_s=5, enabled=False)
    assert view["window_s"] == 5 and view["enabled"] is False
