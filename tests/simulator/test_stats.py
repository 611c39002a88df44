"""Counting per (platform, model), the bounded request log and reset."""
from __future__ import annotations

from providers.simulator.stats import RequestRecord, Stats
from tests.simulator._helpers import ANTHROPIC, BEARER, user


async def test_stats_count_requests_and_tokens_per_model(client):
    total_in = total_out = 0
    for text in ("one", "two", "three"):
        r = await client.post("/v1/chat/completions", headers=BEARER,
                              json={"model": "gpt-4o-2024-11-20", "messages": user(text)})
        total_in += r.json()["usage"]["prompt_tokens"]
        total_out += r.json()["usage"]["completion_tokens"]
    await client.post("/v1/messages", headers=ANTHROPIC,
                      json={"model": "haiku", "max_tokens": 9, "messages": user("x")})
    stats = (await client.get("/_sim/stats")).json()
    gpt = stats["platforms"]["openai"]["gpt-4o"]  # aliases count under the catalog id
    assert gpt["requests"] == 3 and gpt["errors"] == 0
    assert gpt["input_tokens"] == total_in and gpt["output_tokens"] == total_out
    assert stats["platforms"]["anthropic"]["claude-haiku-4-5"]["output_tokens"] == 9
    assert stats["total"]["requests"] == 4


async def test_request_log_carries_switchboard_request_id(client, clock):
    await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": user("hi")},
                      headers={**BEARER, "x-switchboard-request-id": "req_abc"})
    await client.post("/v1/chat/completions", json={"model": "nope", "messages": user("hi")},
                      headers=BEARER)
    rows = (await client.get("/_sim/requests")).json()["requests"]
    assert [r["status"] for r in rows] == [200, 404]
    first = rows[0]
    assert first["request_id"] == "req_abc" and first["platform"] == "openai"
    assert first["model"] == "gpt-4o" and first["stream"] is False and first["t"] == clock.time()
    assert first["input_tokens"] > 0 and first["output_tokens"] > 0
    assert rows[1]["request_id"] is None and rows[1]["input_tokens"] == 0
    only = (await client.get("/_sim/requests", params={"request_id": "req_abc"})).json()
    assert len(only["requests"]) == 1


async def test_reset_clears_counts_and_log(client):
    await client.post("/v1/chat/completions", headers=BEARER,
                      json={"model": "gpt-4o", "messages": user("hi")})
    assert (await client.post("/_sim/reset")).status_code == 200
    assert (await client.get("/_sim/stats")).json()["total"]["requests"] == 0
    assert (await client.get("/_sim/requests")).json()["requests"] == []


def test_log_is_bounded_and_keeps_the_newest():
    stats = Stats(log_size=3)
    for i in range(5):
        stats.record(RequestRecord(float(i), "openai", "gpt-4o", 200, False, 1, 1, f"r{i}"))
    assert [r["request_id"] for r in stats.log()] == ["r2", "r3", "r4"]
    assert [r["request_id"] for r in stats.log(limit=1)] == ["r4"]
    assert stats.counters("openai", "gpt-4o").requests == 5


async def test_admin_refuses_non_loopback_clients():
    import httpx

    from providers.simulator import SimulatorConfig, create_app

    app = create_app(SimulatorConfig(latency_scale=0))
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as c:
        assert (await c.get("/_sim/stats")).status_code == 403
