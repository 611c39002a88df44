"""The HTTP layer on fake services: auth, validation, forbidden fields, OpenAI shapes."""
import pytest
from fastapi.testclient import TestClient

from runtime.http.api import Services, create_api
from runtime.http.auth import Authenticator, key_digest
from runtime.config import load_config
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from runtime.http.schemas import Health
from tests.unit.core.test_router import FakePool

ADMIN = "sk-sb-admin-unit-test"
CFG = load_config()


class ListLedger:
    def __init__(self):
        self.rows = []

    async def record(self, row):
        self.rows.append(row)


@pytest.fixture
def api():
    ledger = ListLedger()
    pool = FakePool({p: "ok" for p in CFG.platforms})
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(user_id):
        return {"rows": len(ledger.rows), "user": user_id}

    app = create_api(Services(CFG, CFG.catalog(), gateway, Authenticator(key_digest(ADMIN)), health, summary))
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["authorization"] = f"Bearer {ADMIN}"
    client.ledger = ledger
    client.pool = pool
    return client


def test_route_and_ledger_row(api):
    r = api.post("/api/ai/route", json={"query": "hi", "use_case": "bulk"})
    assert r.status_code == 200
    assert r.json()["platform"] == "gemini" and r.headers["x-switchboard-chain"] == "bulk"
    (row,) = api.ledger.rows
    assert row["request_id"] == r.json()["request_id"] and row["status"] == "ok"
    assert row["cost_usd"] == pytest.approx(r.json()["cost_usd"])


def test_chat_completion_shape(api):
    r = api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hel"}, {"type": "text", "text": "lo"}]},
    ]})
    assert r.status_code == 200
    body = r.json()
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["role"] == "assistant"
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    assert api.pool.calls == [("openai", "gpt-4o")]


@pytest.mark.parametrize("field", ["api_base", "base_url", "api_key", "extra_headers", "headers"])
def test_redirect_fields_refused_with_400(api, field):
    r = api.post("/v1/chat/completions", json={
        "model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], field: "http://evil.example"})
    assert r.status_code == 400
    assert r.json()["error"]["field"] == field
    assert api.pool.calls == []


def test_missing_or_wrong_bearer_is_401(api):
    r = api.post("/api/ai/route", json={"query": "hi"}, headers={"authorization": ""})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = api.post("/api/ai/route", json={"query": "hi"}, headers={"authorization": "Bearer nope"})
    assert r.status_code == 401 and "nope" not in r.text


@pytest.mark.parametrize(("body", "field"), [
    ({"model": "gpt-4o", "messages": []}, "messages"),
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages.0.role"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 3}, "n"),
    ({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}, "max_tokens"),
])
def test_openai_body_validation_names_field(api, body, field):
    r = api.post("/v1/chat/completions", json=body)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field


def test_health_is_public(api):
    assert api.get("/healthz", headers={"authorization": ""}).status_code == 200


def test_zero_budget_is_402_before_any_call(api):
    r = api.post("/api/ai/route", json={"query": "x" * 4000, "max_cost_usd": 0})
    assert r.status_code == 402 and r.json()["error"]["field"] == "max_cost_usd"
    assert api.pool.calls == [] and api.ledger.rows == []


def test_tiny_budget_reaches_only_the_cheapest_model(api):
    r = api.post("/api/ai/route", json={"query": "x" * 4000, "use_case": "code", "priority": "quality",
                                         "max_tokens": 100, "max_cost_usd": 0.0001})
    assert r.status_code == 200
    assert (r.json()["platform"], r.json()["model"]) == ("groq", "llama-3.1-8b-instant")
    assert api.pool.calls == [("groq", "llama-3.1-8b-instant")]


def test_prompt_larger_than_every_window_is_400(api):
    r = api.post("/v1/chat/completions", json={"model": "switchboard/chat_speed", "max_tokens": 10,
                                                "messages": [{"role": "user", "content": "y" * 150_000}] * 30})  # ~1.1M tokens, 4.5 MB
    assert r.status_code == 400 and r.json()["error"]["type"] == "context_too_long"


def test_missing_field_named_like_a_location_is_still_named(api):
    r = api.post("/api/ai/route", json={"use_case": "chat"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "query"
