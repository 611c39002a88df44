"""Ensemble: members run concurrently, partial failure still synthesizes, none → no synthesis."""
import asyncio

import pytest
from fastapi.testclient import TestClient

from providers.types import ChatResponse, ServerError, Usage
from runtime.deployment import build_api
from runtime.http.api import Services
from runtime.http.auth import Authenticator, key_digest
from runtime.config import load_config
from runtime.core.ensemble import EnsembleFailed, member_plans
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from runtime.core.routing import UnknownRouteError
from runtime.http.schemas import Health
from tests.unit.http.test_api import ADMIN, ListLedger

CFG = load_config()


class ConcurrentPool:
    """Counts how many calls are in flight at once; member calls yield to the loop a few times."""

    def __init__(self, failing=()):
        self.failing = set(failing)
        self.in_flight = 0
        self.peak = 0
        self.calls = []

    async def complete(self, platform, request, deadline, *, wait=False, retry=True):
        self.calls.append((platform, request.model, request.messages[-1].content[:40]))
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        for _ in range(5):
            await asyncio.sleep(0)
        self.in_flight -= 1
        if platform in self.failing:
            return ServerError("boom", platform=platform, model=request.model, status=500)
        return ChatResponse(f"answer from {platform}", Usage(100, 50), "stop", platform, request.model)


def client_for(pool):
    ledger = ListLedger()
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(_):
        return {}

    app = build_api(Services(CFG, CFG.catalog(), gateway, Authenticator(key_digest(ADMIN)), health, summary))
    c = TestClient(app, raise_server_exceptions=False)
    c.headers["authorization"] = f"Bearer {ADMIN}"
    return c, ledger


def test_members_run_concurrently_and_costs_add_up():
    pool = ConcurrentPool()
    client, ledger = client_for(pool)
    r = client.post("/api/ai/ensemble", json={"query": "What is Raft?", "models": ["groq", "gemini", "gpt-4o-mini"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert pool.peak == 3  # all three members in flight at once (serial would be 1)
    assert [m["platform"] for m in body["members"]] == ["groq", "gemini", "openai"]
    assert body["synthesis"]["platform"] == "anthropic"  # the reasoning chain's head
    member_cost = sum(m["cost_usd"] for m in body["members"])
    assert body["total_cost_usd"] == pytest.approx(member_cost + body["synthesis"]["cost_usd"])
    assert len(ledger.rows) == 4
    assert {row["agent_id"] for row in ledger.rows} == {"ensemble-member", "ensemble-synthesis"}


def test_partial_failure_still_synthesizes_and_names_the_missing_member():
    pool = ConcurrentPool(failing={"gemini"})
    client, _ = client_for(pool)
    body = client.post("/api/ai/ensemble", json={"query": "q", "models": ["groq", "gemini"]}).json()
    assert [m["ok"] for m in body["members"]] == [True, False]
    synth_prompt = [c for c in pool.calls if c[0] == "anthropic"]
    assert synth_prompt, "synthesis must run"


def test_no_member_succeeded_means_no_synthesis_call():
    pool = ConcurrentPool(failing=set(CFG.platforms))
    client, _ = client_for(pool)
    r = client.post("/api/ai/ensemble", json={"query": "q", "models": ["groq", "openai"]})
    assert r.status_code == 503 and r.json()["error"]["type"] == "ensemble_failed"
    assert len(pool.calls) == 2  # two members, no synthesis


def test_member_names_resolve_or_fail_clearly():
    plans = member_plans(CFG, ["anthropic", "claude-3-5-haiku"])
    assert [p.steps[0].model.id for p in plans] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    with pytest.raises(UnknownRouteError):
        member_plans(CFG, ["nobody"])
    assert EnsembleFailed(()).members == ()
