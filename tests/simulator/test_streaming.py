"""Streaming in each vendor's framing, and pacing by the model's ttft and tokens/s."""
from __future__ import annotations

import json

import pytest

from providers.simulator.text import count_tokens, split_for_stream
from tests.simulator._helpers import ANTHROPIC, BEARER, GEMINI, sse_events, user


async def _openai_stream(client, base, model, **extra):
    r = await client.post(f"{base}/chat/completions", headers=BEARER,
                          json={"model": model, "messages": user("stream please"), "stream": True, **extra})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    return sse_events(r.text)


async def test_openai_stream_sequence(client):
    events = await _openai_stream(client, "/v1", "gpt-4o", stream_options={"include_usage": True})
    assert events[-1]["data"] == "[DONE]"
    chunks = [json.loads(e["data"]) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finish = chunks[-2]
    assert finish["choices"][0]["finish_reason"] == "stop" and finish["usage"] is None
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[1:-2])
    assert usage_chunk["usage"]["completion_tokens"] == count_tokens(text)


async def test_openai_stream_without_usage_option_has_no_usage(client):
    events = await _openai_stream(client, "/v1", "gpt-4o")
    chunks = [json.loads(e["data"]) for e in events[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_groq_puts_usage_in_x_groq_of_the_last_chunk(client):
    events = await _openai_stream(client, "/openai/v1", "llama-8b")
    last = json.loads(events[-2]["data"])
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["x_groq"]["usage"]["completion_tokens"] > 0


async def test_openrouter_sends_processing_comment_and_always_usage(client):
    events = await _openai_stream(client, "/api/v1", "meta-llama/llama-3-70b")
    assert events[0] == {"comment": "OPENROUTER PROCESSING"}
    assert json.loads(events[-2]["data"])["usage"]["prompt_tokens"] > 0
    assert events[-1]["data"] == "[DONE]"


async def test_anthropic_event_sequence(client):
    r = await client.post("/v1/messages", headers=ANTHROPIC, json={
        "model": "haiku", "max_tokens": 6, "stream": True, "messages": user("stream")})
    events = sse_events(r.text)
    names = [e["event"] for e in events]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    data = [json.loads(e["data"]) for e in events]
    assert all(d["type"] == n for d, n in zip(data, names))
    assert data[0]["message"]["usage"]["input_tokens"] > 0
    delta = data[-2]
    assert delta["delta"]["stop_reason"] == "max_tokens" and delta["usage"]["output_tokens"] <= 6


async def test_gemini_sse_uses_crlf_and_usage_in_every_chunk(client):
    r = await client.post("/v1beta/models/flash:streamGenerateContent?alt=sse", headers=GEMINI,
                          json={"contents": [{"parts": [{"text": "stream"}]}]})
    assert "\r\n\r\n" in r.text and "[DONE]" not in r.text
    chunks = [json.loads(e["data"]) for e in sse_events(r.text, "\r\n\r\n")]
    assert len(chunks) > 1 and all("usageMetadata" in c for c in chunks)
    finishes = [c["candidates"][0].get("finishReason") for c in chunks]
    assert finishes[:-1] == [None] * (len(chunks) - 1) and finishes[-1] == "STOP"
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] == count_tokens(text)


async def test_gemini_stream_without_alt_sse_is_a_json_array(client):
    r = await client.post("/v1beta/models/flash:streamGenerateContent", headers=GEMINI,
                          json={"contents": [{"parts": [{"text": "stream"}]}]})
    chunks = json.loads(r.text)
    assert isinstance(chunks, list) and chunks[-1]["candidates"][0]["finishReason"] == "STOP"


@pytest.mark.parametrize("stream", [False, True])
async def test_latency_follows_ttft_and_tokens_per_second(make_client, clock, stream):
    client, sim = make_client(latency_scale=1.0)
    spec = sim.catalog.get("openai", "gpt-4o")
    start = clock.monotonic()
    r = await client.post("/v1/chat/completions", headers=BEARER, json={
        "model": "gpt-4o", "messages": user("how slow?"), "stream": stream})
    elapsed = clock.monotonic() - start
    if stream:
        text = "".join(json.loads(e["data"])["choices"][0]["delta"].get("content", "")
                       for e in sse_events(r.text)[:-1])
        tokens = sum(count_tokens(p) for p in split_for_stream(text))
    else:
        tokens = r.json()["usage"]["completion_tokens"]
    assert elapsed == pytest.approx(spec.ttft_ms / 1000 + tokens / spec.tokens_per_s)


async def test_latency_scale_and_fixed_latency(make_client, clock):
    client, _ = make_client(latency_scale=0.5, fixed_latency_ms=40.0)
    start = clock.monotonic()
    await client.post("/v1/chat/completions", headers=BEARER,
                      json={"model": "gpt-4o", "messages": user("x")})
    assert clock.monotonic() - start == pytest.approx(0.040)
    client, _ = make_client(latency_scale=0.0)
    start = clock.monotonic()
    await client.post("/v1/chat/completions", headers=BEARER,
                      json={"model": "gpt-4o", "messages": user("x"), "stream": True})
    assert clock.monotonic() == start


async def test_stream_counts_in_stats(sim):
    client, simulator = sim
    await client.post("/v1/chat/completions", headers=BEARER,
                      json={"model": "gpt-4o", "messages": user("x"), "stream": True})
    c = simulator.stats.counters("openai", "gpt-4o")
    assert c.streams == 1 and c.output_tokens > 0
