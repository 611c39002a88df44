"""The walking skeleton end to end: official OpenAI SDK → Serve → ProviderActor → simulator,
with the ledger rows to match."""
from __future__ import annotations

import sqlite3

import httpx
import openai
import pytest

from runtime.config import PRIORITIES, USE_CASES, load_config
from runtime.core.routing import plan_for_use_case
from tests.e2e.conftest import ADMIN_KEY, auth_headers, live_switchboard, settle_ledger, sim_counts

pytestmark = pytest.mark.e2e
CFG = load_config()
CAT = CFG.catalog()


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    with live_switchboard(tmp_path_factory.mktemp("skeleton"), serve_port) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def ledger_rows(app, request_ids):
    settle_ledger(app)
    db = sqlite3.connect(app.settings.data_dir / "ledger.sqlite3")
    try:
        marks = ",".join("?" * len(request_ids))
        cur = db.execute(
            f"SELECT request_id, platform, model, status, input_tokens, output_tokens "
            f"FROM agent_token_usage WHERE request_id IN ({marks})",
            list(request_ids),
        )
        return {row[0]: row[1:] for row in cur.fetchall()}
    finally:
        db.close()


def test_openai_sdk_every_use_case_and_priority_served_by_chain_head(app, client):
    before = sim_counts(app)
    seen: dict[str, tuple[str, str]] = {}
    prompt = "Summarise the CAP theorem in one line."
    for use_case in USE_CASES:
        for priority in PRIORITIES:
            raw = client.chat.completions.with_raw_response.create(
                model=f"switchboard/{use_case}-{priority}",
                messages=[{"role": "user", "content": prompt}],
                max_tokens=64,
            )
            completion = raw.parse()
            plan = plan_for_use_case(CFG, CAT, use_case, priority, len(prompt) // 4, 64)
            head = plan.steps[0]
            assert raw.headers["x-switchboard-platform"] == head.platform
            assert raw.headers["x-switchboard-model"] == head.model.id
            assert raw.headers["x-switchboard-fallback"] == "false"
            assert raw.headers["x-switchboard-attempts"] == "1"
            assert completion.choices[0].message.content
            assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
            seen[raw.headers["x-switchboard-request-id"]] = (head.platform, head.model.id)

    rows = ledger_rows(app, list(seen))
    assert set(rows) == set(seen)
    for request_id, (platform, model) in seen.items():
        assert rows[request_id][:3] == (platform, model, "ok")

    after = sim_counts(app)
    expected: dict[tuple[str, str], int] = {}
    for key in seen.values():
        expected[key] = expected.get(key, 0) + 1
    for key, n in expected.items():
        assert after.get(key, 0) - before.get(key, 0) == n


def test_route_endpoint_reports_platform_cost_and_attempts(app):
    r = httpx.post(
        f"{app.url}/api/ai/route",
        json={"query": "Write a haiku about queues", "use_case": "code", "priority": "quality", "max_tokens": 50},
        headers=auth_headers(),
        trust_env=False,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["platform"], body["model"], body["chain"]) == ("openai", "gpt-4o", "code_quality")
    usage = body["usage"]
    expected_cost = CAT.get("openai", "gpt-4o").cost_usd(usage["input_tokens"], usage["output_tokens"])
    assert body["cost_usd"] == pytest.approx(expected_cost)
    assert body["attempts"] == 1 and body["fallback_used"] is False
    assert float(r.headers["x-switchboard-cost-usd"]) == pytest.approx(expected_cost, abs=1e-8)


def test_models_list_has_catalog_and_routes(client):
    ids = {m.id for m in client.models.list().data}
    assert {"gpt-4o", "claude-sonnet-4-5", "switchboard/chat-balanced", "switchboard/bulk"} <= ids
    assert "claude-3-5-sonnet-20241022" not in ids  # retired models are aliases, not listed


def test_auth_required(app):
    r = httpx.post(f"{app.url}/api/ai/route", json={"query": "hi"}, trust_env=False)
    assert r.status_code == 401 and r.json()["error"]["type"] == "unauthorized"
    bad = openai.OpenAI(base_url=f"{app.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"use_case": "chat"}, "query"),
        ({"query": "hi", "use_case": "poetry"}, "use_case"),
        ({"query": "hi", "temperature": 9}, "temperature"),
        ({"query": "hi", "max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_route_body_is_422_naming_the_field(app, body, field):
    r = httpx.post(f"{app.url}/api/ai/route", json=body, headers=auth_headers(), trust_env=False)
    assert r.status_code == 422
    assert r.json()["error"]["field"] == field


def test_bad_json_is_422(app):
    r = httpx.post(
        f"{app.url}/v1/chat/completions",
        content=b"{not json",
        headers={**auth_headers(), "content-type": "application/json"},
        trust_env=False,
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"


def test_unknown_model_is_404_naming_model(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["param"] == "model"


def test_healthz_announces_simulator(app):
    r = httpx.get(f"{app.url}/healthz", trust_env=False)
    assert r.status_code == 200
    body = r.json()
    assert set(body["simulated_platforms"]) == {"openai", "anthropic", "groq", "gemini", "openrouter"}
    assert "SIMULATED" in body["warning"]
    assert all(v == "ok" for v in body["actors"].values())


def test_costs_summary_totals_by_model(app):
    r = httpx.get(f"{app.url}/api/ai/costs/summary", headers=auth_headers(), trust_env=False)
    assert r.status_code == 200
    body = r.json()
    assert body["total"]["requests"] >= 1


def _ask(client, content, **extra):
    return client.chat.completions.with_raw_response.create(
        model="switchboard/chat-cost", temperature=0,
        messages=[{"role": "user", "content": content}], **extra,
    )


def test_exact_cache_hit_costs_nothing_and_skips_the_simulator(app, client):
    question = "List three uses of a bloom filter."
    first = _ask(client, question)
    before = sim_counts(app)
    second = _ask(client, question)
    assert (first.headers["x-switchboard-cache"], second.headers["x-switchboard-cache"]) == ("miss", "hit")
    assert float(second.headers["x-switchboard-cost-usd"]) == 0.0
    assert sim_counts(app) == before
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    rows = ledger_rows(app, [second.headers["x-switchboard-request-id"]])
    assert list(rows.values())[0][2] == "cached"


def test_paraphrase_hits_only_with_semantic_opt_in(app, client):
    original = "How do I reverse a list in Python?"
    paraphrase = "How can I reverse a Python list?"
    _ask(client, original, extra_body={"cache": "semantic"})
    assert _ask(client, paraphrase).headers["x-switchboard-cache"] == "miss"  # exact only
    before = sim_counts(app)
    hit = _ask(client, paraphrase + " ", extra_body={"cache": "semantic"})
    assert hit.headers["x-switchboard-cache"] == "semantic"
    assert sim_counts(app) == before
    stats = httpx.get(f"{app.url}/api/ai/cache/stats", headers=auth_headers(), trust_env=False).json()
    assert stats["semantic_hits"] >= 1 and stats["saved_usd"] > 0


HEAD_MODELS = {
    "openai": "gpt-4o",
    "anthropic": "claude-sonnet-4-5",
    "groq": "llama-3.3-70b-versatile",
    "gemini": "gemini-2.5-flash",
    "openrouter": "meta-llama/llama-3-70b-instruct",
}


def _ledger_cost(app, request_id: str) -> float:
    settle_ledger(app)
    db = sqlite3.connect(app.settings.data_dir / "ledger.sqlite3")
    try:
        (nusd,) = db.execute("SELECT estimated_cost FROM agent_token_usage WHERE request_id = ?", (request_id,)).fetchone()
        return nusd / 1e9
    finally:
        db.close()


@pytest.mark.parametrize("platform", list(HEAD_MODELS))
def test_openai_sdk_streams_from_every_platform_with_usage_and_exact_cost(app, client, platform):
    model = HEAD_MODELS[platform]
    messages = [{"role": "user", "content": f"Stream a short note about {platform}."}]
    plain = client.chat.completions.with_raw_response.create(
        model=model, messages=messages, max_tokens=60, extra_body={"cache": "off"})
    with client.chat.completions.with_streaming_response.create(
        model=model, messages=messages, max_tokens=60, stream=True,
        stream_options={"include_usage": True}, extra_body={"cache": "off"},
    ) as streamed:
        assert streamed.headers["x-switchboard-platform"] == platform
        request_id = streamed.headers["x-switchboard-request-id"]
        chunks = list(streamed.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    usage = chunks[-1].usage
    completion = plain.parse()
    assert text == completion.choices[0].message.content
    assert (usage.prompt_tokens, usage.completion_tokens) == (
        completion.usage.prompt_tokens, completion.usage.completion_tokens)
    plain_cost = _ledger_cost(app, plain.headers["x-switchboard-request-id"])
    assert plain_cost > 0 and _ledger_cost(app, request_id) == pytest.approx(plain_cost)


def test_ensemble_members_run_in_parallel_under_simulator_latency(app):
    """Each member's model answers after 1.5 s: members sent one after another would reach the
    simulator >= 1.5 s apart; in parallel they arrive together (wide margin: a loaded machine)."""
    delay_ms = 1500
    members = {"groq": "llama-3.3-70b-versatile", "gemini": "gemini-2.5-flash", "openai": "gpt-4o"}
    sim = app.simulator.url
    for platform, model in members.items():
        rule = {"platform": platform, "model": model, "slow_first_byte_ms": delay_ms, "count": 1}
        assert httpx.post(f"{sim}/_sim/faults", json=rule, trust_env=False).status_code == 200
    r = httpx.post(f"{app.url}/api/ai/ensemble", headers=auth_headers(), trust_env=False, timeout=60,
                   json={"query": "Name one consensus algorithm.", "models": list(members)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert all(m["ok"] for m in body["members"]) and body["synthesis"]["platform"] == "anthropic"
    log = httpx.get(f"{sim}/_sim/requests", params={"limit": 50}, trust_env=False).json()
    entries = log["requests"] if isinstance(log, dict) else log
    arrivals = {}
    for e in entries:
        if members.get(e["platform"]) == e["model"]:
            arrivals[e["platform"]] = max(arrivals.get(e["platform"], 0), e["t"])
    assert set(arrivals) == set(members)
    spread = max(arrivals.values()) - min(arrivals.values())
    assert spread < delay_ms / 1000, f"members arrived {spread:.3f}s apart: not parallel"
    assert body["total_cost_usd"] == pytest.approx(
        sum(m["cost_usd"] for m in body["members"]) + body["synthesis"]["cost_usd"])
