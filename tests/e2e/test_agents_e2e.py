"""The agent pipelines over HTTP against the simulator: one live app for the module.

Faults are injected per (platform, model) with the simulator's POST /_sim/faults and cleared
after each test. Every test uses its own inputs, so no answer comes from the response cache.
"""
from __future__ import annotations

import sqlite3
import uuid

import httpx
import pytest

from runtime.config import load_config
from runtime.core.routing import chain_steps
from tests.e2e.conftest import auth_headers, live_switchboard, settle_ledger, sim_counts

pytestmark = pytest.mark.e2e



def chain_targets(chain: str) -> list[tuple[str, str]]:
    """The (platform, catalog id) steps of a chain (the simulator keys faults by catalog id)."""
    config = load_config()
    return [(s.platform, s.model.id) for s in chain_steps(config, config.catalog(), chain)]


CODE_COST = chain_targets("code_cost")  # the performance step's chain
CHAT_COST = chain_targets("chat_cost")  # the visual summary's chain
REVIEW_AGENTS = {"code-review:structure", "code-review:security", "code-review:performance",
                 "code-review:synthesis"}


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    with live_switchboard(tmp_path_factory.mktemp("agents"), serve_port) as running:
        yield running


@pytest.fixture
def faults(app):
    """Inject simulator faults for one test; all are cleared afterwards."""
    url = f"{app.simulator.url}/_sim/faults"

    def inject(targets: list[tuple[str, str]], status: int = 503) -> None:
        rules = [{"platform": p, "model": m, "status": status} for p, m in targets]
        httpx.post(url, json=rules, trust_env=False).raise_for_status()

    yield inject
    httpx.delete(url, trust_env=False).raise_for_status()


def post(app, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{app.url}{path}", json=body, headers=auth_headers(), trust_env=False, timeout=60)


def unique_code() -> str:
    return f"def handler_{uuid.uuid4().hex[:8]}(request):\n    return eval(request.args['q'])\n"


def ledger_rows(app, conversation_id: str) -> list[tuple[str, str, str]]:
    settle_ledger(app)
    db = sqlite3.connect(f"file:{app.settings.data_dir / 'ledger.sqlite3'}?mode=ro", uri=True)
    try:
        return db.execute(
            "SELECT agent_id, platform, status FROM agent_token_usage WHERE conversation_id = ? "
            "ORDER BY created_at", (conversation_id,),
        ).fetchall()
    finally:
        db.close()


def test_review_with_a_fallback_serving_the_structure_step(app, faults):
    faults([("openai", "gpt-4o")])
    r = post(app, "/api/ai/review", {"code": unique_code(), "language": "python"})
    assert r.status_code == 200, r.text
    body = r.json()
    structure = body["steps"][0]
    assert (structure["platform"], structure["fallback_used"]) == ("anthropic", True)
    assert all(s["ok"] for s in body["steps"]) and body["missing_steps"] == []
    assert body["report"].startswith("[sim:") and body["blackboard_entries"] == 3
    rows = ledger_rows(app, body["run_id"])
    assert {agent for agent, _, _ in rows} == REVIEW_AGENTS
    assert ("code-review:structure", "anthropic", "ok") in rows


def test_review_with_a_step_failing_entirely(app, faults):
    faults(CODE_COST)
    r = post(app, "/api/ai/review", {"code": unique_code(), "language": "python"})
    assert r.status_code == 200, r.text
    body = r.json()
    performance = body["steps"][2]
    assert performance["step"] == "performance" and performance["ok"] is False
    assert body["missing_steps"] == ["performance"] and body["steps"][3]["ok"] is True
    failed = [row for row in ledger_rows(app, body["run_id"]) if row[0] == "code-review:performance"]
    assert failed and failed[0][2] == "error"


def test_visual_edit_template_summary_and_nothing_implemented_until_confirmed(app, faults):
    faults(CHAT_COST)
    component = f"CheckoutButton{uuid.uuid4().hex[:6]}"
    change = {"type": "move", "component_id": component, "before": {"x": 10}, "after": {"x": 60}}
    before = sim_counts(app)
    r = post(app, "/api/ai/visual-edits", change)
    assert r.status_code == 201, r.text
    captured = r.json()
    assert captured["summary_source"] == "template"
    assert captured["summary"] == f"Moved {component} 50px to the right."
    after = sim_counts(app)
    called = {key for key in after if after[key] != before.get(key, 0)}
    assert called <= set(CHAT_COST)  # only the (failing) summary chain was asked: no learn, no implement

    view = httpx.get(f"{app.url}/api/ai/visual-edits/{captured['id']}", headers=auth_headers(), trust_env=False)
    assert view.json()["status"] == "pending_confirmation" and view.json()["result"] is None

    confirmed = post(app, f"/api/ai/visual-edits/{captured['id']}/confirm", {"note": "keep CTAs right-aligned"})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["status"] == "implemented" and confirmed.json()["learning"]
    again = post(app, f"/api/ai/visual-edits/{captured['id']}/confirm")
    assert again.status_code == 409


def test_agent_routing_falls_back_to_keywords_on_bad_json(app):
    # a very long entity makes the simulator's JSON answer longer than max_tokens: it is cut
    # off mid-object, which is not usable JSON
    entity = "Superlong" + "x" * 1500
    r = post(app, "/api/ai/agents/route", {"query": f"{entity} Stripe refund webhook fails"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classification_source"] == "keywords"
    assert body["classifier"]["ok"] is True and body["classifier"]["finish_reason"] == "length"
    assert "stripe" in body["classification"]["keywords"]

    ok = post(app, "/api/ai/agents/route", {"query": f"Fix the Stripe refund webhook {uuid.uuid4().hex[:6]}"})
    assert ok.status_code == 200 and ok.json()["classification_source"] == "ai"


def test_generate_code(app):
    r = post(app, "/api/ai/generate-code", {"task": f"merge two sorted lists ({uuid.uuid4().hex[:6]})",
                                             "language": "python"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["platform"] in {"openai", "anthropic", "gemini"} and body["code"]
    assert [row[0] for row in ledger_rows(app, body["run_id"])] == ["codegen"]
