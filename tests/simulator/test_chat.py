"""Non-streaming chat in all five protocols: vendor shapes, determinism, truncation, JSON mode,
retired and unknown models."""
from __future__ import annotations

import json

import pytest

from providers.simulator.text import count_prompt_tokens, count_tokens
from tests.simulator._helpers import ANTHROPIC, BEARER, GEMINI, user

OPENAI_FAMILY = [
    ("/v1", "openai", "gpt-4o"),
    ("/openai/v1", "groq", "llama-3.3-70b-versatile"),
    ("/api/v1", "openrouter", "meta-llama/llama-3-70b-instruct"),
]


@pytest.mark.parametrize("base,platform,model", OPENAI_FAMILY)
async def test_openai_family_answers_in_openai_shape(client, base, platform, model):
    r = await client.post(f"{base}/chat/completions", headers=BEARER,
                          json={"model": model, "messages": user("Hello there")})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == model
    choice = body["choices"][0]
    text = choice["message"]["content"]
    assert text.startswith(f"[sim:{platform}/{model}] ")
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["prompt_tokens"] == count_prompt_tokens(["Hello there"])
    assert usage["completion_tokens"] == count_tokens(text)
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_vendor_extras(client):
    groq = (await client.post("/openai/v1/chat/completions", headers=BEARER,
                              json={"model": "llama-8b", "messages": user("x")})).json()
    assert groq["x_groq"]["id"].startswith("req_")
    router = (await client.post("/api/v1/chat/completions", headers=BEARER,
                                json={"model": "meta-llama/llama-3-70b", "messages": user("x")})).json()
    assert router["usage"]["cost"] > 0


async def test_alias_is_served_and_echoed(client):
    r = await client.post("/v1/chat/completions", headers=BEARER,
                          json={"model": "gpt-4o-2024-08-06", "messages": user("hi")})
    assert r.status_code == 200
    assert r.json()["model"] == "gpt-4o-2024-08-06"
    assert r.json()["choices"][0]["message"]["content"].startswith("[sim:openai/gpt-4o] ")


async def test_anthropic_messages_shape(client):
    r = await client.post("/v1/messages", headers=ANTHROPIC, json={
        "model": "claude-sonnet-4-5", "max_tokens": 500, "system": "Be brief.",
        "messages": user("Explain routing"),
    })
    assert r.status_code == 200
    body = r.json()
    assert body["type"] == "message" and body["role"] == "assistant"
    assert body["stop_reason"] == "end_turn"
    text = body["content"][0]["text"]
    assert body["usage"]["input_tokens"] == count_prompt_tokens(["Be brief.", "Explain routing"])
    assert body["usage"]["output_tokens"] == count_tokens(text)
    assert r.headers["request-id"].startswith("req_")


async def test_anthropic_requires_max_tokens_and_version(client):
    r = await client.post("/v1/messages", headers=ANTHROPIC,
                          json={"model": "sonnet", "messages": user("x")})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    r = await client.post("/v1/messages", headers={"x-api-key": "k"},
                          json={"model": "sonnet", "max_tokens": 5, "messages": user("x")})
    assert r.status_code == 400 and "anthropic-version" in r.json()["error"]["message"]


async def test_gemini_generate_content_shape_and_query_key(client):
    body = {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "systemInstruction": {"parts": [{"text": "Be kind."}]}}
    r = await client.post("/v1beta/models/gemini-2.5-flash:generateContent?key=abc", json=body)
    assert r.status_code == 200
    data = r.json()
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP" and cand["content"]["role"] == "model"
    text = cand["content"]["parts"][0]["text"]
    meta = data["usageMetadata"]
    assert meta["promptTokenCount"] == count_prompt_tokens(["Be kind.", "Hi"])
    assert meta["candidatesTokenCount"] == count_tokens(text)
    assert meta["totalTokenCount"] == meta["promptTokenCount"] + meta["candidatesTokenCount"]
    assert data["modelVersion"] == "gemini-2.5-flash"


async def test_answers_are_deterministic_and_depend_on_the_prompt(make_client):
    a, _ = make_client()
    b, _ = make_client()

    async def ask(c, text):
        r = await c.post("/v1/chat/completions", headers=BEARER,
                         json={"model": "gpt-4o", "messages": user(text)})
        return r.json()["choices"][0]["message"]["content"]

    assert await ask(a, "same prompt") == await ask(b, "same prompt")
    assert await ask(a, "same prompt") != await ask(a, "another prompt")


@pytest.mark.parametrize("max_tokens", [1, 3, 7])
async def test_max_tokens_truncates_with_length_finish(client, max_tokens):
    r = await client.post("/v1/chat/completions", headers=BEARER, json={
        "model": "gpt-4o", "messages": user("tell me a long story"), "max_tokens": max_tokens})
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= max_tokens
    r = await client.post("/v1beta/models/flash:generateContent", headers=GEMINI, json={
        "contents": [{"parts": [{"text": "long"}]}],
        "generationConfig": {"maxOutputTokens": max_tokens}})
    assert r.json()["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_json_mode_in_each_protocol(client):
    prompt = "Fix the Python bug in Billing?"
    answers = [
        (await client.post("/v1/chat/completions", headers=BEARER, json={
            "model": "gpt-4o-mini", "messages": user(prompt),
            "response_format": {"type": "json_object"}})).json()["choices"][0]["message"]["content"],
        (await client.post("/v1/messages", headers=ANTHROPIC, json={
            "model": "haiku", "max_tokens": 200, "system": "Answer in JSON only.",
            "messages": user(prompt)})).json()["content"][0]["text"],
        (await client.post("/v1beta/models/flash-lite:generateContent", headers=GEMINI, json={
            "contents": [{"parts": [{"text": prompt}]}],
            "generationConfig": {"responseMimeType": "application/json"}})).json()
        ["candidates"][0]["content"]["parts"][0]["text"],
    ]
    for text in answers:
        obj = json.loads(text)
        assert obj == {"intent": "code", "entities": ["Python", "Billing"], "type": "question",
                       "keywords": ["fix", "python", "bug", "billing"]}


@pytest.mark.parametrize("base,model,status,code", [
    ("/v1", "gpt-5-imaginary", 404, "model_not_found"),
    ("/openai/v1", "llama-3.1-70b-versatile", 400, "model_decommissioned"),
    ("/openai/v1", "nope", 404, "model_not_found"),
])
async def test_openai_family_model_errors(client, base, model, status, code):
    r = await client.post(f"{base}/chat/completions", headers=BEARER,
                          json={"model": model, "messages": user("x")})
    assert r.status_code == status
    assert r.json()["error"]["code"] == code and model in r.json()["error"]["message"]


async def test_openrouter_model_errors(client):
    r = await client.post("/api/v1/chat/completions", headers=BEARER,
                          json={"model": "anthropic/claude-3-sonnet", "messages": user("x")})
    assert r.status_code == 404 and r.json()["error"]["code"] == 404
    r = await client.post("/api/v1/chat/completions", headers=BEARER,
                          json={"model": "no/such", "messages": user("x")})
    assert r.status_code == 400 and "not a valid model ID" in r.json()["error"]["message"]


async def test_anthropic_and_gemini_retired_models_are_404(client):
    r = await client.post("/v1/messages", headers=ANTHROPIC, json={
        "model": "claude-3-5-sonnet-20241022", "max_tokens": 5, "messages": user("x")})
    assert r.status_code == 404
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "not_found_error"
    r = await client.post("/v1beta/models/gemini-1.5-pro:generateContent", headers=GEMINI,
                          json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"


async def test_prompt_longer_than_context_window(client):
    big = "x" * (4 * 8192 + 100)  # openrouter llama-3-70b has an 8192-token window
    r = await client.post("/api/v1/chat/completions", headers=BEARER,
                          json={"model": "meta-llama/llama-3-70b", "messages": user(big)})
    assert r.status_code == 400 and "maximum context length is 8192" in r.json()["error"]["message"]


async def test_bad_json_body_is_a_400(client):
    r = await client.post("/v1/chat/completions", headers=BEARER, content=b"{nope")
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
