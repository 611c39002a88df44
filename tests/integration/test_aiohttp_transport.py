"""The provider actors' HTTP client (httpx over aiohttp, providers/aiohttp_transport.py) on real
sockets against a simulator process: answers, live streams, and every transport failure mapped
to its taxonomy class."""
from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from providers.endpoints import resolve_endpoints
from providers.transport import Transport, new_http_client
from providers.types import (
    ChatRequest, Message, RateLimitedError, StreamCutError, UpstreamConnectionError, UpstreamTimeoutError,
)
from runtime.config import load_config
from runtime.simulator_process import SimulatorProcess

CFG = load_config()
MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash-lite"}


@pytest.fixture(scope="module")
def sim():
    process = SimulatorProcess.start(latency_scale=0.0)
    yield process
    process.stop()


def request(platform: str) -> ChatRequest:
    return ChatRequest((Message("user", "say something short"),), max_tokens=30, model=MODELS[platform],
                       request_id=f"req-aiohttp-{platform}")


def transport(client: httpx.AsyncClient, base_url: str, platform: str) -> Transport:
    return Transport(resolve_endpoints(CFG.providers, {}, base_url).endpoints[platform], client)


async def fault(client: httpx.AsyncClient, sim_url: str, platform: str, **rule) -> None:
    r = await client.post(f"{sim_url}/_sim/faults", json={"platform": platform, "model": MODELS[platform],
                                                            "count": 1, **rule})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("platform", list(MODELS))
def test_answers_headers_and_request_id_reach_the_upstream(sim, platform):
    async def scenario():
        async with new_http_client() as client:
            response, headers = await transport(client, sim.url, platform).complete(request(platform), MODELS[platform], 5.0)
            seen = (await client.get(f"{sim.url}/_sim/requests")).json()["requests"]
        return response, headers, seen

    response, headers, seen = asyncio.run(scenario())
    assert response.text and response.usage.output_tokens > 0 and response.platform == platform
    assert headers.get("Content-Type", "").startswith("application/json")  # case-insensitive
    assert f"req-aiohttp-{platform}" in {r["request_id"] for r in seen}


@pytest.mark.parametrize("platform", list(MODELS))
def test_a_stream_arrives_as_events_and_a_cut_one_is_stream_cut(sim, platform):
    async def scenario():
        async with new_http_client() as client:
            t = transport(client, sim.url, platform)
            whole = [e async for e in t.stream(request(platform), MODELS[platform], 5.0, 5.0)]
            await fault(client, sim.url, platform, cut_after_chunks=2)
            cut: list = []
            with pytest.raises(StreamCutError):
                async for event in t.stream(request(platform), MODELS[platform], 5.0, 5.0):
                    cut.append(event)
        return whole, cut

    whole, cut = asyncio.run(scenario())
    assert whole[-1].kind == "done" and len(whole) > 2
    assert all(e.kind == "delta" for e in cut)  # no `done`: the stream ended early


def test_an_error_status_is_mapped_by_the_wire_adapter(sim):
    async def scenario():
        async with new_http_client() as client:
            await fault(client, sim.url, "openai", status=429, retry_after_s=3)
            with pytest.raises(RateLimitedError) as info:
                await transport(client, sim.url, "openai").complete(request("openai"), MODELS["openai"], 5.0)
        return info.value

    assert asyncio.run(scenario()).retry_after_s == pytest.approx(3, abs=0.5)


def test_a_refused_connection_is_a_connection_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def scenario():
        async with new_http_client() as client:
            await transport(client, f"http://127.0.0.1:{port}", "openai").complete(request("openai"), MODELS["openai"], 5.0)

    with pytest.raises(UpstreamConnectionError) as refused:
        asyncio.run(scenario())
    assert refused.value.unanswered == 0  # never sent: nothing the vendor could bill


def test_a_silent_server_is_a_timeout():
    """Accepts the connection, never answers: the read timeout (the call's budget) fires."""
    async def scenario():
        server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with new_http_client() as client:
                await asyncio.wait_for(transport(client, f"http://127.0.0.1:{port}", "openai").complete(
                    request("openai"), MODELS["openai"], 0.3), 10)
        finally:
            server.close()

    with pytest.raises(UpstreamTimeoutError) as timed_out:
        asyncio.run(scenario())
    assert timed_out.value.unanswered == 1  # sent, never answered: maybe billed


def test_a_server_closing_before_answering_is_a_connection_error():
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def scenario():
        server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with new_http_client() as client:
                await transport(client, f"http://127.0.0.1:{port}", "openai").complete(request("openai"), MODELS["openai"], 5.0)
        finally:
            server.close()

    with pytest.raises(UpstreamConnectionError) as hung_up:
        asyncio.run(scenario())
    assert hung_up.value.unanswered == 1


def test_a_connection_dropped_mid_stream_is_stream_cut_after_the_deltas_already_read():
    frame = b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n'

    async def half_a_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n" % (len(frame), frame))
        await writer.drain()
        writer.close()  # no terminating chunk

    async def scenario():
        server = await asyncio.start_server(half_a_stream, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        seen = []
        try:
            async with new_http_client() as client:
                t = transport(client, f"http://127.0.0.1:{port}", "openai")
                with pytest.raises(StreamCutError):
                    async for event in t.stream(request("openai"), MODELS["openai"], 5.0, 5.0):
                        seen.append(event)
        finally:
            server.close()
        return seen

    assert [(e.kind, e.text) for e in asyncio.run(scenario())] == [("delta", "Hel")]
