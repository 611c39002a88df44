"""One structured log line per request, carrying what the request did; the request id is the
response's x-request-id and the ledger row's request_id."""
import io
import json

import pytest
from structlog.testing import capture_logs

from runtime import request_log
from runtime.logs import configure_logging
from tests.unit.http.hardening.conftest import CFG, USER_A, build_app, client_for


def request_lines(logs):
    return [e for e in logs if e["event"] == "request"]


def test_one_line_per_request_with_what_the_route_did(api):
    with capture_logs() as logs:
        r = api.post("/api/ai/route", json={"query": "hi", "use_case": "bulk"})
    (line,) = request_lines(logs)
    assert line["request_id"] == r.headers["x-request-id"] == r.json()["request_id"]
    assert line["request_id"] == api.ledger.rows[0]["request_id"]
    assert (line["method"], line["path"], line["status"]) == ("POST", "/api/ai/route", 200)
    assert (line["key_id"], line["use_case"], line["chain"]) == ("admin", "bulk", "bulk")
    assert (line["platform"], line["model"]) == (r.json()["platform"], r.json()["model"])
    assert (line["input_tokens"], line["output_tokens"]) == (1000, 2000)
    assert line["cost_usd"] == pytest.approx(r.json()["cost_usd"])
    assert line["fallback"] is False and line["cache"] in ("hit", "miss") and line["latency_ms"] > 0


def test_refused_and_unauthenticated_requests_are_logged_too():
    api = client_for(build_app(config=CFG.model_copy(update={"server": CFG.server.model_copy(update={"max_body_bytes": 100})})))
    with capture_logs() as logs:
        api.post("/api/ai/route", json={"query": "x" * 200})
        api.get("/v1/models", headers={"authorization": "Bearer nope"})
    statuses = [line["status"] for line in request_lines(logs)]
    assert statuses == [413, 401]


def test_query_strings_are_never_logged(api):
    with capture_logs() as logs:
        api.get("/v1/models?key=AIzaSySecretLookingThing1234567890")
    (line,) = request_lines(logs)
    assert line["path"] == "/v1/models" and "AIza" not in json.dumps(line)


def test_safe_incoming_request_id_is_kept_and_unsafe_one_replaced(api):
    r = api.get("/v1/models", headers={"x-request-id": "client-trace-12345678"})
    assert r.headers["x-request-id"] == "client-trace-12345678"
    r = api.get("/v1/models", headers={"x-request-id": "bad\nid injected=1"})
    assert r.headers["x-request-id"].startswith("req_")


def test_user_key_id_is_logged(api):
    user = client_for(build_app(), USER_A)
    with capture_logs() as logs:
        user.post("/api/ai/route", json={"query": "hi"})
    assert request_lines(logs)[0]["key_id"] == "key_a"


def test_json_line_through_the_configured_pipeline_redacts():
    out = io.StringIO()
    configure_logging(stream=out, secrets=["invalid-canary-unit"])
    try:
        api = client_for(build_app())
        api.post("/api/ai/route", json={"query": "hi"})
    finally:
        import structlog

        structlog.reset_defaults()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    (line,) = [x for x in lines if x["event"] == "request"]
    assert line["status"] == 200 and line["level"] == "info" and "timestamp" in line


def test_notes_add_up_and_are_ignored_outside_a_request():
    request_log.note(cost_usd=1.0)  # no request: nothing happens, nothing raises
    token = request_log.begin("req_x")
    request_log.note(cost_usd=0.25, input_tokens=10, platform="groq")
    request_log.note(cost_usd=0.5, input_tokens=5, platform="gemini")
    record = request_log.end(token)
    assert record == {"request_id": "req_x", "cost_usd": 0.75, "input_tokens": 15, "platform": "gemini"}


def test_lines_do_not_go_through_print(monkeypatch):
    """Serve's throughput mode replaces builtins.print with one that mangles a line written to
    another file into a tuple's repr: the log must write to its stream itself."""
    import builtins

    import structlog

    monkeypatch.setattr(builtins, "print", lambda *a, **k: (_ for _ in ()).throw(AssertionError("print used")))
    out = io.StringIO()
    configure_logging(stream=out, secrets=[])
    try:
        structlog.get_logger("t").info("request", status=200)
    finally:
        structlog.reset_defaults()
    assert json.loads(out.getvalue())["status"] == 200


def test_a_client_that_leaves_is_logged_as_499_not_as_a_server_error():
    import asyncio

    from runtime.http.middleware import RequestLogMiddleware

    async def leaves(scope, receive, send):
        raise asyncio.CancelledError  # what Serve does to a handler whose client hung up

    class Log:
        def __init__(self):
            self.lines = []

        def info(self, event, **fields):
            self.lines.append(("info", fields["status"]))

        def error(self, event, **fields):
            self.lines.append(("error", fields["status"]))

    log = Log()
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(RequestLogMiddleware(leaves, logger=log)(scope, None, None))
    assert log.lines == [("info", 499)]
