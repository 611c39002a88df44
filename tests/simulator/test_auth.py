"""Each vendor's 401 (Gemini: 403/400 like the real API), and keys echoed verbatim so tests can
prove Switchboard never leaks them."""
from __future__ import annotations

import pytest

from tests.simulator._helpers import user

KEY = "invalid-sk-LEAKME-1234"


def _openai_like(base, model):
    return f"{base}/chat/completions", {"model": model, "messages": user("hi")}


CASES = [
    ("openai", *_openai_like("/v1", "gpt-4o")),
    ("groq", *_openai_like("/openai/v1", "llama-8b")),
    ("openrouter", *_openai_like("/api/v1", "meta-llama/llama-3-70b")),
]


@pytest.mark.parametrize("platform,path,body", CASES)
async def test_openai_family_missing_and_invalid_key(client, platform, path, body):
    r = await client.post(path, json=body)
    assert r.status_code == 401 and "message" in r.json()["error"]
    r = await client.post(path, json=body, headers={"authorization": "Bearer "})
    assert r.status_code == 401
    r = await client.post(path, json=body, headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 401 and KEY in r.json()["error"]["message"]


async def test_anthropic_missing_and_invalid_key(client):
    body = {"model": "sonnet", "max_tokens": 5, "messages": user("hi")}
    r = await client.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    r = await client.post("/v1/messages", json=body,
                          headers={"anthropic-version": "2023-06-01", "x-api-key": KEY})
    assert r.status_code == 401 and KEY in r.json()["error"]["message"]


async def test_gemini_missing_and_invalid_key(client):
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = await client.post("/v1beta/models/flash:generateContent", json=body)
    assert r.status_code == 403 and r.json()["error"]["status"] == "PERMISSION_DENIED"
    r = await client.post(f"/v1beta/models/flash:generateContent?key={KEY}", json=body)
    err = r.json()["error"]
    assert r.status_code == 400 and KEY in err["message"]
    assert err["details"][0]["reason"] == "API_KEY_INVALID"


async def test_model_listing_needs_a_key(client):
    assert (await client.get("/v1/models")).status_code == 401
    assert (await client.get("/openai/v1/models")).status_code == 401
    assert (await client.get("/v1beta/models")).status_code == 403


async def test_auth_failures_are_counted_with_the_model(sim):
    client, simulator = sim
    await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": user("x")})
    counters = simulator.stats.counters("openai", "gpt-4o")
    assert counters.requests == 1 and counters.errors == 1 and counters.statuses == {"401": 1}
