"""WebSocket /api/ai/stream: auth by header or first message, chunk… done, errors as messages."""
import pytest
from starlette.websockets import WebSocketDisconnect

from providers.clock import FakeClock
from providers.types import UpstreamConnectionError
from runtime.http.key_rate import MemoryKeyRate
from tests.unit.http.hardening.conftest import ADMIN, USER_A, build_app, client_for
from tests.unit.core.test_router import FakePool

PATH = "/api/ai/stream"
ASK = {"query": "hi", "use_case": "bulk", "priority": "cost"}


def receive_answer(ws):
    chunks = []
    while True:
        msg = ws.receive_json()
        if msg["type"] != "chunk":
            return chunks, msg
        chunks.append(msg["text"])


def test_header_auth_then_chunks_and_done(api):
    with api.websocket_connect(PATH, headers={"authorization": f"Bearer {ADMIN}"}) as ws:
        assert ws.receive_json() == {"type": "ready", "key_id": "admin"}
        ws.send_json(ASK)
        chunks, done = receive_answer(ws)
    assert "".join(chunks) == "Hello streamed world"
    assert done["type"] == "done" and done["chain"] == "bulk" and done["platform"] == "gemini"
    assert done["usage"] == {"input_tokens": 12, "output_tokens": 3, "total_tokens": 15}
    assert done["cost_usd"] > 0 and done["fallback_used"] is False
    (row,) = api.ledger.rows
    assert row["endpoint"] == PATH and row["request_id"] == done["request_id"] and row["status"] == "ok"


def test_first_message_auth_and_several_requests_on_one_socket():
    api = client_for(build_app(), USER_A)
    with api.websocket_connect(PATH, headers={"authorization": ""}) as ws:
        ws.send_json({"type": "auth", "key": USER_A})
        assert ws.receive_json()["key_id"] == "key_a"
        for _ in range(2):
            ws.send_json({"type": "route", **ASK})
            assert receive_answer(ws)[1]["type"] == "done"
    assert len(api.ledger.rows) == 2


@pytest.mark.parametrize("first", [{"type": "auth", "key": "sk-wrong"}, {"query": "no auth first"}, "not json"])
def test_failed_auth_is_an_error_message_then_close_1008(api, first):
    with api.websocket_connect(PATH, headers={"authorization": ""}) as ws:
        ws.send_text(first if isinstance(first, str) else __import__("json").dumps(first))
        msg = ws.receive_json()
        assert msg["type"] == "error" and msg["error"]["type"] == "unauthorized"
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
    assert closed.value.code == 1008
    assert api.pool.calls == []


def test_bad_request_is_an_error_and_the_socket_stays_open(api):
    with api.websocket_connect(PATH, headers={"authorization": f"Bearer {ADMIN}"}) as ws:
        ws.receive_json()
        ws.send_json({"query": "hi", "max_tokens": 10**9})
        err = ws.receive_json()
        assert err == {"type": "error", "error": {"type": "invalid_request", "field": "max_tokens",
                                                  "message": err["error"]["message"]}}
        ws.send_json({"query": "hi", "base_url": "http://evil.example"})
        assert ws.receive_json()["error"] == {"type": "forbidden_field", "field": "base_url",
                                              "message": "'base_url' cannot be set by clients"}
        ws.send_text("[1, 2]")
        assert ws.receive_json()["error"]["field"] == "body"
        ws.send_json(ASK)
        assert receive_answer(ws)[1]["type"] == "done"


def test_all_upstreams_down_is_an_error_message():
    down = UpstreamConnectionError("down", platform="x")
    api = client_for(build_app(FakePool({p: down for p in ("gemini", "openrouter", "groq")})))
    with api.websocket_connect(PATH, headers={"authorization": f"Bearer {ADMIN}"}) as ws:
        ws.receive_json()
        ws.send_json(ASK)
        chunks, msg = receive_answer(ws)
    assert chunks == [] and msg["type"] == "error" and msg["error"]["type"] == "upstream_unavailable"


def test_cut_after_first_chunk_ends_with_an_error_message():
    api = client_for(build_app(FakePool({"gemini": "cut"})))
    with api.websocket_connect(PATH, headers={"authorization": f"Bearer {ADMIN}"}) as ws:
        ws.receive_json()
        ws.send_json(ASK)
        chunks, msg = receive_answer(ws)
    assert chunks and msg["type"] == "error"
    assert api.ledger.rows[-1]["status"] == "error"


def test_per_key_rpm_applies_to_stream_requests():
    api = client_for(build_app(rpm=1, key_rate=MemoryKeyRate(clock=FakeClock())), USER_A)
    with api.websocket_connect(PATH) as ws:
        ws.receive_json()
        ws.send_json(ASK)
        assert receive_answer(ws)[1]["type"] == "done"
        ws.send_json(ASK)
        msg = ws.receive_json()
    assert msg["type"] == "error" and msg["error"]["type"] == "rate_limited"
