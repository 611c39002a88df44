"""The agent routes on FastAPI's TestClient, with the Coordinator's pipelines run in-process
(the same replies the actor gives) over the scripted pool."""
from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from agents.coordinator import Pipelines
from agents.prompts import IMPLEMENT_SYSTEM, LEARN_PATTERN_SYSTEM
from blackboard.store import MemoryStore
from runtime.deployment import build_api
from runtime.http.api import Services
from runtime.http.auth import Authenticator, key_digest
from runtime.finops.budget import Budget, BudgetExceeded, Scope
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from runtime.finops.ledger_schema import TrackedChange
from runtime.http.schemas import Health
from tests.unit.agents_pipelines.helpers import CFG, Rows, ScriptedPool, down, make_gateway

ADMIN = "sk-sb-admin-agents-unit"
MOVE = {"type": "move", "component_id": "LoginButton", "before": {"x": 1}, "after": {"x": 2}}


class DictChanges:
    """The change store's contract (claims are compare-and-set) over a dict."""

    def __init__(self) -> None:
        self.items: dict[str, TrackedChange] = {}

    async def store_change(self, change: TrackedChange) -> None:
        self.items[change.change_id] = change

    async def get_change(self, change_id: str) -> TrackedChange | None:
        return self.items.get(change_id)

    async def update_change(self, change_id, status, result=None, expect_status=None) -> bool:
        current = self.items.get(change_id)
        if current is None or (expect_status is not None and current.status != expect_status):
            return False
        fields = {"status": status} | ({"result": result} if result is not None else {})
        self.items[change_id] = replace(current, **fields)
        return True


class InProcess:
    """An actor handle look-alike: `handle.method.remote(**kw)` awaits the pipelines' reply."""

    def __init__(self, pipelines: Pipelines) -> None:
        self._pipelines = pipelines

    def __getattr__(self, name: str):
        return SimpleNamespace(remote=getattr(self._pipelines, name))


def make_client(pool: ScriptedPool, coordinator: bool = True) -> TestClient:
    gateway = make_gateway(pool, Rows())
    pipelines = Pipelines(gateway, MemoryStore(), DictChanges())

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(user_id):
        return {}

    services = Services(
        config=CFG, catalog=CFG.catalog(), gateway=gateway, auth=Authenticator(key_digest(ADMIN)),
        health=health, costs_summary=summary,
        coordinator=InProcess(pipelines) if coordinator else None,
    )
    client = TestClient(build_api(services), raise_server_exceptions=False)
    client.headers["authorization"] = f"Bearer {ADMIN}"
    client.pool = pool
    return client


@pytest.fixture
def api() -> TestClient:
    return make_client(ScriptedPool())


def test_review_answers_with_the_report_and_each_step(api):
    r = api.post("/api/ai/review", json={"code": "print(1)", "language": "python"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["step"] for s in body["steps"]] == ["structure", "security", "performance", "synthesis"]
    assert body["report"] and body["missing_steps"] == [] and body["total_cost_usd"] > 0
    assert body["run_id"].startswith("review_")


@pytest.mark.parametrize("payload, field", [
    ({}, "code"),
    ({"code": ""}, "code"),
    ({"code": "x", "language": "python", "model": "gpt-4o"}, "model"),
])
def test_a_bad_review_body_is_a_422_naming_the_field(api, payload, field):
    r = api.post("/api/ai/review", json=payload)
    assert r.status_code == 422 and r.json()["error"]["field"] == field
    assert api.pool.requests == []


def test_visual_edit_capture_then_confirm_then_409(api):
    r = api.post("/api/ai/visual-edits", json=MOVE)
    assert r.status_code == 201, r.text
    captured = r.json()
    assert captured["summary_source"] == "ai" and captured["delta"] == {"x": {"from": 1, "to": 2}}
    change_id = captured["id"]
    assert api.get(f"/api/ai/visual-edits/{change_id}").json()["status"] == "pending_confirmation"
    assert api.pool.prompts(IMPLEMENT_SYSTEM) == []  # nothing implemented before confirming

    r = api.post(f"/api/ai/visual-edits/{change_id}/confirm", json={"note": "align with the form"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "implemented" and r.json()["learning"]
    assert len(api.pool.prompts(LEARN_PATTERN_SYSTEM)) == 1

    again = api.post(f"/api/ai/visual-edits/{change_id}/confirm")
    assert again.status_code == 409 and again.json()["error"]["type"] == "already_confirmed"
    assert again.json()["error"]["change_status"] == "implemented"
    view = api.get(f"/api/ai/visual-edits/{change_id}").json()
    assert view["status"] == "implemented" and view["result"]["implementation"]


@pytest.mark.parametrize("payload, field", [
    ({**MOVE, "type": "teleport"}, "type"),
    ({"type": "add", "component_id": "X", "before": {"a": 1}, "after": {"a": 2}}, "body"),
    ({**MOVE, "component_id": ""}, "component_id"),
])
def test_a_bad_visual_edit_is_a_422(api, payload, field):
    r = api.post("/api/ai/visual-edits", json=payload)
    assert r.status_code == 422 and r.json()["error"]["field"] == field


def test_unknown_or_malformed_change_ids(api):
    assert api.get("/api/ai/visual-edits/chg_0000000000000000").status_code == 404
    r = api.post("/api/ai/visual-edits/chg_0000000000000000/confirm")
    assert r.status_code == 404 and r.json()["error"]["field"] == "id"
    bad = api.get("/api/ai/visual-edits/not-an-id")
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "change_id"


def test_agent_route_and_its_keyword_fallback():
    api = make_client(ScriptedPool(lambda platform, request: "definitely not json"))
    r = api.post("/api/ai/agents/route", json={"query": "Stripe refund webhook fails", "context": {"page": "billing"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classification_source"] == "keywords" and len(body["supporting"]) <= 2
    assert body["classifier"]["step"] == "classify"


def test_generate_code_and_its_503_when_nothing_serves():
    answer = "```go\nfunc Add(a, b int) int { return a + b }\n```"
    ok = make_client(ScriptedPool(lambda platform, request: answer))
    r = ok.post("/api/ai/generate-code", json={"task": "add two ints", "language": "go"})
    assert r.status_code == 200 and r.json()["code"] == "func Add(a, b int) int { return a + b }"
    failing = make_client(ScriptedPool(lambda platform, request: down(platform)))
    r = failing.post("/api/ai/generate-code", json={"task": "add two ints", "language": "go"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "upstream_unavailable"
    assert "sk-sb" not in r.text and json.loads(r.text)["error"]["step"]["ok"] is False


def test_auth_and_a_missing_coordinator():
    api = make_client(ScriptedPool(), coordinator=False)
    assert api.post("/api/ai/review", json={"code": "x"}, headers={"authorization": ""}).status_code == 401
    r = api.post("/api/ai/review", json={"code": "x"})
    assert r.status_code == 503 and r.json()["error"]["type"] == "agents_unavailable"


class RefusingLedger:
    """A ledger whose key budget is spent: every admission is refused."""

    def __init__(self) -> None:
        self.admissions = []
        self.rows = []

    async def admit_and_open_pending(self, row, budgets):
        self.admissions.append((row.agent_id, tuple(b.name for b in budgets)))
        return BudgetExceeded("key:k1:daily", 0.01, 0.01, 0.0, 0.002, "day")

    async def finalize(self, row):
        self.rows.append(row)

    async def record(self, row):
        self.rows.append(row)


async def test_a_budget_refusal_stops_the_pipeline_with_a_402_reply_and_no_upstream_call():
    pool, ledger = ScriptedPool(), RefusingLedger()
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict)
    board = MemoryStore()
    pipelines = Pipelines(gateway, board, DictChanges())
    budget = Budget("key:k1:daily", 0.01, "day", Scope.key("k1"))
    reply = await pipelines.review("bob", "k1", "print(1)", budgets=(budget,))
    assert reply["status"] == 402 and reply["error"]["type"] == "budget_exceeded"
    assert reply["error"]["budget"] == "key:k1:daily"
    assert ledger.admissions == [("code-review:structure", ("key:k1:daily",))]  # the key's budget was checked
    assert pool.requests == [] and await board.sessions() == []
