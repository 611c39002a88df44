"""Every error class of the taxonomy, for every platform's protocol, produced by the simulator's
fault injection and mapped by the real Transport + wire adapter (simulator in-process over
httpx's ASGI transport: real HTTP semantics, no sockets, no Ray)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from providers.endpoints import resolve_endpoints
from providers.simulator import create_app
from providers.simulator.engine import SimulatorConfig
from providers.transport import Transport, new_http_client
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
    StreamCutError,
    UpstreamTimeoutError,
)
from runtime.config import load_config
from runtime.simulator_process import SimulatorProcess

CFG = load_config()
SIM = "http://sim.test"
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "groq": "llama-3.1-8b-instant",
    "gemini": "gemini-2.5-flash-lite",
    "openrouter": "meta-llama/llama-3-70b-instruct",
}
OVERLOAD_STATUS = {"anthropic": 529}

# (name, fault rule fields, expected class, extra check)
CASES = [
    ("authentication", {"status": 401}, AuthenticationError),
    ("bad_request", {"status": 422}, BadRequestError),
    ("context_too_long", {"status": 400}, ContextTooLongError),
    ("model_not_found", {"status": 404}, ModelNotFoundError),
    ("out_of_credit", {"status": 402}, OutOfCreditError),
    ("rate_limited", {"status": 429, "retry_after_s": 7}, RateLimitedError),
    ("overloaded", {"status": 503}, OverloadedError),
    ("server_error", {"status": 500}, ServerError),
]
# Gemini has no out-of-credit status of its own: quota exhaustion is a 429 like rate limiting.
SKIP = {("gemini", "out_of_credit")}


def run(coro):
    return asyncio.run(coro)


def setup(platform: str):
    app = create_app(SimulatorConfig(catalog=CFG.catalog(), latency_scale=0.0))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=SIM)
    endpoint = resolve_endpoints(CFG.providers, {}, SIM).endpoints[platform]
    return client, Transport(endpoint, client)


async def inject(client: httpx.AsyncClient, platform: str, **rule) -> None:
    r = await client.post("/_sim/faults", json={"platform": platform, "model": MODELS[platform], **rule})
    assert r.status_code == 200, r.text


def request(platform: str) -> ChatRequest:
    return ChatRequest((Message("user", "tell me about error taxonomies"),), max_tokens=40, model=MODELS[platform])


@pytest.mark.parametrize("platform", list(MODELS))
@pytest.mark.parametrize(("name", "rule", "expected"), CASES, ids=[c[0] for c in CASES])
def test_injected_status_maps_to_its_class(platform, name, rule, expected):
    if (platform, name) in SKIP:
        pytest.skip("Gemini reports exhausted quota as a 429 (RESOURCE_EXHAUSTED), mapped as rate_limited")
    if name == "overloaded":
        rule = {"status": OVERLOAD_STATUS.get(platform, 503)}

    async def scenario():
        client, transport = setup(platform)
        await inject(client, platform, **rule)
        with pytest.raises(expected) as info:
            await transport.complete(request(platform), MODELS[platform], 5.0)
        await client.aclose()
        return info.value

    err = run(scenario())
    assert type(err) is expected or (expected is BadRequestError and type(err) is BadRequestError)
    assert err.platform == platform and err.kind == expected.kind
    assert "sim-local-key" not in err.message
    if name == "rate_limited":
        assert err.retry_after_s == pytest.approx(7, abs=0.5)


@pytest.mark.parametrize("platform", list(MODELS))
def test_insufficient_quota_on_429_is_out_of_credit_for_openai_family(platform):
    if platform in ("anthropic", "gemini"):
        pytest.skip("insufficient_quota is an OpenAI-protocol error code")

    async def scenario():
        client, transport = setup(platform)
        await inject(client, platform, status=429, error_code="insufficient_quota")
        with pytest.raises(OutOfCreditError):
            await transport.complete(request(platform), MODELS[platform], 5.0)
        await client.aclose()

    run(scenario())


@pytest.fixture(scope="module")
def sim_process():
    """A real simulator process: read timeouts need real sockets."""
    sim = SimulatorProcess.start(latency_scale=0.0)
    yield sim
    sim.stop()


@pytest.mark.parametrize("platform", list(MODELS))
def test_a_hung_upstream_is_a_timeout(sim_process, platform):
    async def scenario():
        async with new_http_client() as client:
            await client.post(f"{sim_process.url}/_sim/faults",
                              json={"platform": platform, "model": MODELS[platform], "hang": True, "count": 1})
            endpoint = resolve_endpoints(CFG.providers, {}, sim_process.url).endpoints[platform]
            with pytest.raises(UpstreamTimeoutError):
                await asyncio.wait_for(Transport(endpoint, client).complete(request(platform), MODELS[platform], 0.3), 10)

    run(scenario())


@pytest.mark.parametrize("platform", list(MODELS))
@pytest.mark.parametrize(("rule", "expected"), [
    ({"cut_after_chunks": 2}, StreamCutError),
    ({"malformed_chunk": True}, ServerError),
])
def test_broken_streams_are_typed(platform, rule, expected):
    async def scenario():
        client, transport = setup(platform)
        await inject(client, platform, **rule)
        seen = []
        with pytest.raises(expected):
            async for event in transport.stream(request(platform), MODELS[platform], 5.0, 5.0):
                seen.append(event)
        await client.aclose()
        return seen

    seen = run(scenario())
    assert all(e.kind == "delta" for e in seen)  # never a `done` for a broken stream


@pytest.mark.parametrize("platform", list(MODELS))
def test_a_healthy_stream_ends_with_usage(platform):
    async def scenario():
        client, transport = setup(platform)
        events = [e async for e in transport.stream(request(platform), MODELS[platform], 5.0, 5.0)]
        await client.aclose()
        return events

    events = run(scenario())
    assert events[-1].kind == "done" and events[-1].usage.output_tokens > 0
    assert "".join(e.text for e in events[:-1])
