"""Fault injection: counted and seeded errors, each vendor's special statuses, hangs, slow first
bytes, cut and malformed streams, latency multipliers."""
from __future__ import annotations

import asyncio
import json

import pytest

from providers.simulator import FaultRule, SimulatorConfig, create_app
from providers.simulator.faults import FaultTable, load_rules
from tests.simulator._helpers import ANTHROPIC, BEARER, GEMINI, sse_events, user

CHAT = {"model": "gpt-4o", "messages": user("x")}


async def _fault(client, **rule):
    r = await client.post("/_sim/faults", json=rule)
    assert r.status_code == 200, r.text
    return r.json()["faults"]


async def _statuses(client, n, path="/v1/chat/completions", body=CHAT, headers=BEARER):
    return [(await client.post(path, headers=headers, json=body)).status_code for _ in range(n)]


async def test_count_injects_for_the_next_n_requests_only(client):
    await _fault(client, platform="openai", model="gpt-4o-2024-11-20", status=503, count=2)
    assert await _statuses(client, 4) == [503, 503, 200, 200]
    listed = (await client.get("/_sim/faults")).json()["faults"]
    assert listed[0]["model"] == "gpt-4o" and listed[0]["remaining"] == 0


def test_error_rate_is_seeded_and_deterministic():
    def run(seed):
        table = FaultTable([FaultRule(platform="openai", error_rate=0.3, status=500)], seed=seed)
        return [table.draw("openai", ["gpt-4o"]) is not None for _ in range(200)]

    assert run(1) == run(1) and run(1) != run(2)
    assert 30 <= sum(run(1)) <= 90


async def test_wildcards_and_delete(client):
    await _fault(client, platform="openai", status=500)
    assert await _statuses(client, 1) == [500]
    await _fault(client, status=502)  # every platform
    assert await _statuses(client, 1, "/openai/v1/chat/completions",
                           {"model": "llama-8b", "messages": user("x")}) == [502]
    assert (await client.delete("/_sim/faults")).json() == {"faults": []}
    assert await _statuses(client, 1) == [200]


async def test_bad_rules_are_rejected(client):
    assert (await client.post("/_sim/faults", json={"status": 200})).status_code == 400
    assert (await client.post("/_sim/faults", json={"bogus": 1})).status_code == 400
    assert (await client.post("/_sim/faults", json={"platform": "openai", "model": "nope"})).status_code == 400


async def test_retry_after_on_injected_errors(client):
    await _fault(client, platform="openai", status=503, retry_after_s=4, count=1)
    r = await client.post("/v1/chat/completions", headers=BEARER, json=CHAT)
    assert r.status_code == 503 and r.headers["retry-after"] == "4"
    assert r.json()["error"]["type"] == "server_error"


async def test_special_statuses_in_each_vendor_shape(client):
    await _fault(client, platform="anthropic", status=529, count=1)
    r = await client.post("/v1/messages", headers=ANTHROPIC,
                          json={"model": "haiku", "max_tokens": 5, "messages": user("x")})
    assert r.status_code == 529 and r.json()["error"]["type"] == "overloaded_error"
    await _fault(client, platform="anthropic", status=400, count=1)
    r = await client.post("/v1/messages", headers=ANTHROPIC,
                          json={"model": "haiku", "max_tokens": 5, "messages": user("x")})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("prompt is too long")
    await _fault(client, platform="gemini", status=503, count=1)
    r = await client.post("/v1beta/models/flash:generateContent", headers=GEMINI,
                          json={"contents": [{"parts": [{"text": "x"}]}]})
    assert r.status_code == 503 and r.json()["error"]["status"] == "UNAVAILABLE"
    await _fault(client, platform="openrouter", status=402, count=1)
    r = await client.post("/api/v1/chat/completions", headers=BEARER,
                          json={"model": "meta-llama/llama-3-70b", "messages": user("x")})
    assert r.status_code == 402 and r.json()["error"]["code"] == 402
    await _fault(client, platform="openai", status=429, error_code="insufficient_quota", count=1)
    r = await client.post("/v1/chat/completions", headers=BEARER, json=CHAT)
    assert r.status_code == 429 and r.json()["error"]["code"] == "insufficient_quota"


async def test_cut_after_chunks_ends_the_stream_early(client):
    await _fault(client, platform="openai", cut_after_chunks=3)
    r = await client.post("/v1/chat/completions", headers=BEARER, json={**CHAT, "stream": True})
    events = sse_events(r.text)
    assert len(events) == 3 and all(e["data"] != "[DONE]" for e in events)


async def test_malformed_chunk_sends_one_invalid_data_line(client):
    await _fault(client, platform="anthropic", malformed_chunk=True)
    r = await client.post("/v1/messages", headers=ANTHROPIC, json={
        "model": "haiku", "max_tokens": 50, "stream": True, "messages": user("x")})
    bad = []
    for e in sse_events(r.text):
        try:
            json.loads(e["data"])
        except ValueError:
            bad.append(e["event"])
    assert bad == ["content_block_delta"]
    r = await client.post("/v1/messages", headers=ANTHROPIC,
                          json={"model": "haiku", "max_tokens": 50, "messages": user("x")})
    assert r.status_code == 200
    with pytest.raises(ValueError):
        json.loads(r.text)


async def test_slow_first_byte_and_latency_multiplier(make_client, clock):
    client, sim = make_client(fixed_latency_ms=100)
    await _fault(client, platform="openai", slow_first_byte_ms=250, latency_multiplier=3)
    start = clock.monotonic()
    await client.post("/v1/chat/completions", headers=BEARER, json=CHAT)
    assert clock.monotonic() - start == pytest.approx(0.25 + 0.3)


async def test_hang_accepts_and_sends_nothing_until_the_client_leaves(clock):
    app = create_app(SimulatorConfig(clock=clock, latency_scale=0,
                                     faults=(FaultRule(platform="openai", hang=True),)))
    body = json.dumps(CHAT).encode()
    incoming: asyncio.Queue = asyncio.Queue()
    await incoming.put({"type": "http.request", "body": body, "more_body": False})
    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1), "server": ("sim", 80),
             "headers": [(b"authorization", b"Bearer k"), (b"content-type", b"application/json")]}
    task = asyncio.create_task(app(scope, incoming.get, send))
    sim = app.state.simulator
    while not sim.stats.log():  # wait (event loop turns, no time passes) until it is logged
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert sent == [] and not task.done()
    assert sim.stats.log()[0]["status"] == 0
    await incoming.put({"type": "http.disconnect"})
    await asyncio.wait_for(task, 5)


def test_rules_load_from_inline_json_and_yaml_file(tmp_path):
    rules = load_rules('[{"platform": "groq", "status": 500, "count": 1}]')
    assert rules[0].platform == "groq" and rules[0].count == 1
    path = tmp_path / "faults.yaml"
    path.write_text("faults:\n  - {platform: gemini, model: flash, hang: true}\n")
    assert load_rules(str(path))[0].hang is True
