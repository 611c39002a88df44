"""413 before parsing: a declared Content-Length over the limit, or a streamed body that grows
past it, is refused without the app (or its JSON parser) ever seeing it."""
import asyncio
import json

import httpx
import pytest

from runtime.config import load_config
from runtime.http.middleware import BodyLimitMiddleware, DEFAULT_MAX_BODY_BYTES
from tests.unit.http.hardening.conftest import ADMIN, CFG, build_app, client_for

LIMIT = 2048
SMALL = CFG.model_copy(update={"server": CFG.server.model_copy(update={"max_body_bytes": LIMIT})})


def test_default_limit_is_8_mib_from_config():
    assert DEFAULT_MAX_BODY_BYTES == 8 * 1024 * 1024 == load_config().server.max_body_bytes


def test_declared_length_over_limit_is_413_and_never_reaches_the_route():
    api = client_for(build_app(config=SMALL))
    r = api.post("/api/ai/route", json={"query": "x" * (LIMIT + 10)})
    assert r.status_code == 413
    assert r.json() == {"error": {"type": "payload_too_large", "message": f"request body exceeds {LIMIT} bytes",
                                  "field": "body", "param": "body"}}
    assert api.pool.calls == [] and api.ledger.rows == []


def test_chunked_body_over_limit_is_413_even_when_it_is_not_json():
    api = client_for(build_app(config=SMALL))

    def chunks():  # no Content-Length: transfer-encoding chunked
        for _ in range(10):
            yield b"{not json at all" * 64

    r = api.post("/api/ai/route", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text  # not 422: the parser never ran
    assert r.json()["error"]["type"] == "payload_too_large"
    assert api.pool.calls == []


def test_body_just_under_the_limit_is_parsed():
    api = client_for(build_app(config=SMALL))
    body = json.dumps({"query": "x" * (LIMIT - 100)})
    assert len(body) <= LIMIT
    r = api.post("/api/ai/route", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(api.pool.calls) == 1


def test_seven_mib_prompt_passes_the_default_limit_and_meets_the_context_check():
    api = client_for(build_app())
    r = api.post("/v1/chat/completions", json={"model": "switchboard/chat_speed", "max_tokens": 10,
                                                "messages": [{"role": "user", "content": "y" * 390_000}] * 18})
    assert r.status_code == 400 and r.json()["error"]["type"] == "context_too_long"


def test_middleware_does_not_call_the_app_for_a_declared_oversize_body():
    called = []

    async def app(scope, receive, send):
        called.append(scope["path"])

    async def run():
        transport = httpx.ASGITransport(app=BodyLimitMiddleware(app, max_bytes=10))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.post("/x", content=b"0123456789AB")

    r = asyncio.run(run())
    assert r.status_code == 413 and called == []


def test_limit_must_be_positive():
    with pytest.raises(ValueError):
        BodyLimitMiddleware(lambda *a: None, max_bytes=0)


def test_get_without_body_is_untouched():
    api = client_for(build_app(config=SMALL))
    assert api.get("/v1/models").status_code == 200
    assert api.get("/healthz", headers={"authorization": f"Bearer {ADMIN}"}).status_code == 200
