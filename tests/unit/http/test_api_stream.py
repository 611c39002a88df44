"""Streaming chat completions through the HTTP layer on a fake pool."""
import math
import json

import pytest
from fastapi.testclient import TestClient

from providers.types import UpstreamConnectionError
from runtime.http.api import Services, create_api
from runtime.http.auth import Authenticator, key_digest
from runtime.config import load_config
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from runtime.http.schemas import Health
from tests.unit.http.test_api import ADMIN, ListLedger
from tests.unit.core.test_router import FakePool

CFG = load_config()


def make_client(outcomes):
    ledger, pool = ListLedger(), FakePool(outcomes)
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(_):
        return {}

    app = create_api(Services(CFG, CFG.catalog(), gateway, Authenticator(key_digest(ADMIN)), health, summary))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["authorization"] = f"Bearer {ADMIN}"
    return client, ledger, pool


def events(text: str):
    out = []
    for block in text.strip().split("\n\n"):
        data = block.removeprefix("data: ")
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


def body(model="switchboard/chat-speed", include_usage=True):
    return {"model": model, "stream": True, "stream_options": {"include_usage": include_usage},
            "messages": [{"role": "user", "content": "hello there"}]}


def test_stream_falls_back_before_first_byte_and_ends_with_usage_and_done():
    client, ledger, pool = make_client({"groq": UpstreamConnectionError("down", platform="groq"), "gemini": "ok"})
    r = client.post("/v1/chat/completions", json=body())
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-switchboard-platform"] == "gemini" and r.headers["x-switchboard-fallback"] == "true"
    evs = events(r.text)
    assert evs[-1] == "[DONE]"
    assert evs[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in evs[:-1] if e["choices"])
    assert text == "Hello streamed world"
    assert evs[-2]["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
                                "prompt_tokens_details": {"cached_tokens": 0},
                                "completion_tokens_details": {"reasoning_tokens": 0}}
    (row,) = ledger.rows
    assert (row["platform"], row["status"], row["input_tokens"], row["output_tokens"]) == ("gemini", "ok", 12, 3)
    assert row["cost_usd"] == pytest.approx(CFG.catalog().get("gemini", "gemini-2.5-flash").cost_usd(12, 3))
    assert [c[0] for c in pool.calls] == ["groq", "gemini"]


def test_usage_chunk_only_when_asked():
    client, _, _ = make_client({"groq": "ok"})
    evs = events(client.post("/v1/chat/completions", json=body(include_usage=False)).text)
    assert all("usage" not in e for e in evs if e != "[DONE]")


def test_failure_after_first_byte_ends_with_error_event_and_records_partial_usage():
    client, ledger, pool = make_client({"groq": "cut", "gemini": "ok"})
    r = client.post("/v1/chat/completions", json=body())
    evs = events(r.text)
    assert "[DONE]" not in evs and evs[-1]["error"]["type"] == "stream_cut"
    assert [c[0] for c in pool.calls] == ["groq"]  # no fallback once bytes were sent
    (row,) = ledger.rows
    assert row["status"] == "error" and row["error_kind"] == "stream_cut"
    assert row["output_tokens"] == math.ceil(len("Hello streamed world") / 4) and row["cost_usd"] > 0


def test_every_platform_failing_before_first_byte_is_503_json():
    down = {p: UpstreamConnectionError("down", platform=p) for p in CFG.platforms}
    client, ledger, _ = make_client(down)
    r = client.post("/v1/chat/completions", json=body())
    assert r.status_code == 503 and r.json()["error"]["type"] == "upstream_unavailable"
    assert ledger.rows[0]["status"] == "error"
