"""The hardened HTTP surface on ONE live app (Ray + Serve + simulators): WebSocket streaming,
per-key rpm, Idempotency-Key, a bounded schemathesis run against the live OpenAPI schema, and
the canary: OpenAI is given a key the simulator echoes in its 401 bodies, and that key must
appear in no response, log line, metrics text or ledger byte.

Dependencies: `websockets` (already installed with uvicorn[standard] / Ray Serve) and
`schemathesis` (dev, `pip install schemathesis`)."""
from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path

import httpx
import pytest

from runtime.simulator_process import SimulatorProcess
from tests.e2e.conftest import auth_headers, live_switchboard, sim_counts

pytestmark = pytest.mark.e2e


CANARY = "invalid-canary-" + uuid.uuid4().hex
SEEN: list[str] = []  # every response text this module saw, for the canary grep
PUBLIC = {("/healthz", "get")}


@pytest.fixture(scope="module")
def canary_sim():
    sim = SimulatorProcess.start(latency_scale=0)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory, canary_sim):
    env = {"OPENAI_BASE_URL": f"{canary_sim.url}/v1", "OPENAI_API_KEY": CANARY}
    with live_switchboard(tmp_path_factory.mktemp("hardening"), serve_port, env=env) as running:
        yield running


def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    kwargs.setdefault("headers", auth_headers())
    r = httpx.request(method, f"{app.url}{path}", trust_env=False, timeout=30, **kwargs)
    SEEN.append(f"{r.status_code} {dict(r.headers)} {r.text}")
    return r


def ws_url(app) -> str:
    return app.url.replace("http://", "ws://") + "/api/ai/stream"


def ws_ask(app, request: dict, headers: dict | None = None, first: dict | None = None) -> tuple[list[str], dict]:
    from websockets.sync.client import connect

    with connect(ws_url(app), additional_headers=headers or {}, open_timeout=10) as ws:
        if first is not None:
            ws.send(json.dumps(first))
        ready = json.loads(ws.recv(timeout=10))
        assert ready["type"] == "ready", ready
        ws.send(json.dumps(request))
        chunks = []
        while True:
            raw = ws.recv(timeout=30)
            SEEN.append(raw)
            msg = json.loads(raw)
            if msg["type"] != "chunk":
                return chunks, msg
            chunks.append(msg["text"])


def test_websocket_streams_a_routed_answer(app):
    chunks, done = ws_ask(app, {"query": "stream me", "use_case": "bulk", "cache": "off"}, headers=auth_headers())
    assert chunks and done["type"] == "done" and done["chain"] == "bulk"
    assert done["usage"]["output_tokens"] > 0 and done["cost_usd"] > 0


def test_websocket_first_message_auth_and_refusal(app):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    key = call(app, "POST", "/api/keys", json={"user_id": "ws-user"}).json()["key"]
    _, done = ws_ask(app, {"query": "hi", "use_case": "bulk"}, first={"type": "auth", "key": key})
    assert done["type"] == "done"
    with connect(ws_url(app), open_timeout=10) as ws:
        ws.send(json.dumps({"type": "auth", "key": "sk-sb-not-a-key"}))
        assert json.loads(ws.recv(timeout=10))["error"]["type"] == "unauthorized"
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd.code == 1008


def test_per_key_rpm_is_enforced_across_the_app(app):
    created = call(app, "POST", "/api/keys", json={"user_id": "rpm-user", "rpm": 2})
    assert created.status_code == 201, created.text
    headers = {"authorization": f"Bearer {created.json()['key']}"}
    assert [call(app, "GET", "/v1/models", headers=headers).status_code for _ in range(2)] == [200, 200]
    r = call(app, "POST", "/api/ai/route", json={"query": "one too many"}, headers=headers)
    assert r.status_code == 429 and r.json()["error"]["type"] == "rate_limited"
    # the window frees a minute after the calls' slice was lent, plus the slice's 1 s term
    assert 1 <= int(r.headers["retry-after"]) <= 61
    assert call(app, "GET", "/v1/models").status_code == 200  # the admin key has no rpm


def test_idempotency_key_answers_once_across_the_app(app):
    body = {"query": f"idempotent {uuid.uuid4().hex}", "use_case": "bulk", "cache": "off"}
    headers = {**auth_headers(), "idempotency-key": uuid.uuid4().hex}
    before = sum(sim_counts(app).values())
    first = call(app, "POST", "/api/ai/route", json=body, headers=headers)
    again = call(app, "POST", "/api/ai/route", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert sum(sim_counts(app).values()) == before + 1
    other = call(app, "POST", "/api/ai/route", json={**body, "query": "changed"}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["type"] == "idempotency_key_reused"


def test_body_limit_and_error_shapes_live(app):
    r = call(app, "POST", "/api/ai/route", content=b"x" * (8 * 1024 * 1024 + 1),
             headers={**auth_headers(), "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "payload_too_large"
    assert call(app, "GET", "/nowhere").json()["error"]["type"] == "not_found"
    assert call(app, "DELETE", "/api/ai/route").json()["error"]["type"] == "method_not_allowed"


def test_schemathesis_no_5xx_and_responses_match_the_schema(app):
    """Bounded property run per operation (positive and negative data): no 5xx, and every
    response matches the schema the app publishes."""
    schemathesis = pytest.importorskip("schemathesis")  # dev dependency
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{app.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 8
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(max_examples=6, deadline=None, derandomize=True, database=None,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            def run(case):
                response = case.call(base_url=app.url, headers=auth_headers(), timeout=30)
                SEEN.append(response.text)
                case.validate_response(response, checks=[response_schema_conformance])
                if response.status_code >= 500 and not own_deadline_too_short(case, response):
                    case.validate_response(response, checks=[not_a_server_error])

            try:
                run()
            except Unsatisfiable:
                if mode is GenerationMode.POSITIVE:
                    raise
                # an operation without inputs has no invalid data to send


def own_deadline_too_short(case, response) -> bool:
    """The one 5xx a valid request may get with healthy upstreams: it set a `deadline_ms` so
    short that every attempt's deadline passed (503 upstream_unavailable, all timeouts)."""
    body = case.body if isinstance(case.body, dict) else {}
    if response.status_code != 503 or "deadline_ms" not in body:
        return False
    failures = response.json()["error"].get("failures", [])
    return bool(failures) and all(f["kind"] == "timeout" for f in failures)


def test_every_protected_operation_requires_auth(app):
    schema = call(app, "GET", "/openapi.json").json()
    checked = 0
    for path, item in schema["paths"].items():
        for method in item:
            if (path, method) in PUBLIC:
                continue
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            r = call(app, method.upper(), concrete, headers={})
            assert r.status_code == 401, (method, path, r.status_code, r.text)
            assert r.json()["error"]["type"] == "unauthorized"
            checked += 1
    assert checked >= 8


def _metrics_text() -> str:
    try:
        from ray._private.worker import _global_node

        port = _global_node.metrics_export_port
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text
    except Exception:  # noqa: BLE001 - the metrics endpoint is optional in a test cluster
        return ""


def _log_text() -> str:
    """Every log file of the Ray session: replicas' and actors' JSON lines, Serve's logs, and
    Ray's own (the runtime_env agent logs env_vars verbatim, so keys must never travel there)."""
    from ray._private.worker import _global_node

    logs = Path(_global_node.get_logs_dir_path())
    return "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file() and p.stat().st_size)


def test_canary_key_never_leaks(app, canary_sim):
    """Last in the module: everything above also ran with the canary configured."""
    routed = call(app, "POST", "/api/ai/route", json={"query": "canary", "use_case": "code",
                                                      "priority": "quality", "cache": "off"})
    assert routed.status_code == 200 and routed.json()["fallback_used"] is True
    direct = call(app, "POST", "/v1/chat/completions",
                  json={"model": "gpt-4o", "messages": [{"role": "user", "content": "canary"}], "cache": "off"})
    assert direct.status_code >= 400
    streamed = call(app, "POST", "/v1/chat/completions", json={
        "model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "canary"}], "cache": "off"})
    _, ws_done = ws_ask(app, {"query": "canary ws", "use_case": "code", "priority": "quality", "cache": "off"},
                        headers=auth_headers())
    for path in ("/api/ai/providers", "/healthz", "/api/ai/costs/summary"):
        call(app, "GET", path)
    rows = httpx.get(f"{canary_sim.url}/_sim/requests", trust_env=False).json()["requests"]
    assert any(r["platform"] == "openai" and r["status"] == 401 for r in rows)  # refused upstream
    assert streamed.status_code >= 200 and ws_done["type"] in ("done", "error")

    logs, give_up = _log_text(), time.monotonic() + 10
    while routed.json()["request_id"] not in logs and time.monotonic() < give_up:
        time.sleep(0.1)  # replicas write request lines every 0.2 s (runtime/logs.py LineBuffer)
        logs = _log_text()
    assert routed.json()["request_id"] in logs  # the grep below reads the replica's log lines
    ledger = b"".join(p.read_bytes() for p in Path(app.settings.data_dir).rglob("*") if p.is_file())
    assert ledger  # the SQLite file (and its WAL) exist
    places = {"responses": "\n".join(SEEN), "logs": logs, "metrics": _metrics_text()}
    for name, text in places.items():
        assert CANARY not in text, f"canary key leaked into {name}"
    assert CANARY.encode() not in ledger, "canary key leaked into the ledger database"

