"""The chat fast path (runtime/http/fast_chat.py) answers exactly what the FastAPI route answers:
each request below goes to an app with the fast path and to one without it (the route alone),
and status, error body and the headers a client reads must be the same."""
from __future__ import annotations

import json

import pytest

from runtime.http import api as api_module
from runtime.http.fast_chat import ChatFastPath, json_object
from tests.unit.http.hardening.conftest import build_app, client_for

MESSAGES = [{"role": "user", "content": "hello"}]
CHAT = "/v1/chat/completions"


class RouteOnly:
    """Stands in for ChatFastPath: hands every request to the FastAPI app."""

    def __init__(self, app, **_):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def both():
    fast = client_for(build_app(idempotency=None))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(api_module, "ChatFastPath", RouteOnly)
        route = client_for(build_app(idempotency=None))
    return fast, route


def _json(body) -> bytes:
    return json.dumps(body).encode()


CASES = {
    "ok": ({"content-type": "application/json"}, _json({"model": "gpt-4o", "messages": MESSAGES})),
    "ok, charset": ({"content-type": "application/json; charset=utf-8"},
                    _json({"model": "gpt-4o", "messages": MESSAGES})),
    "no messages": ({"content-type": "application/json"}, _json({"model": "gpt-4o"})),
    "wrong type": ({"content-type": "application/json"}, _json({"model": "gpt-4o", "messages": "hi"})),
    "bad role": ({"content-type": "application/json"},
                 _json({"model": "gpt-4o", "messages": [{"role": "robot", "content": "x"}]})),
    "not an object": ({"content-type": "application/json"}, b"[1, 2]"),
    "unknown field": ({"content-type": "application/json"},
                      _json({"model": "gpt-4o", "messages": MESSAGES, "logit_bias": {"1": 2}})),
    "unknown model": ({"content-type": "application/json"}, _json({"model": "nope-1", "messages": MESSAGES})),
    "not json": ({"content-type": "application/json"}, b"{not json"),
    "empty": ({"content-type": "application/json"}, b""),
    "text/plain": ({"content-type": "text/plain"}, _json({"model": "gpt-4o", "messages": MESSAGES})),
    "no content-type": ({}, _json({"model": "gpt-4o", "messages": MESSAGES})),
    "no key": ({"content-type": "application/json", "authorization": ""},
               _json({"model": "gpt-4o", "messages": MESSAGES})),
    "no key, bad body": ({"content-type": "application/json", "authorization": ""}, _json({"model": 3})),
    "wrong key": ({"content-type": "application/json", "authorization": "Bearer sk-sb-nobody"},
                  _json({"model": "gpt-4o", "messages": MESSAGES})),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_fast_path_answers_as_the_route_does(both, case):
    headers, body = CASES[case]
    answers = [client.post(CHAT, content=body, headers=headers) for client in both]
    fast, route = answers
    assert fast.status_code == route.status_code, (fast.text, route.text)
    assert fast.headers.get("content-type") == route.headers.get("content-type")
    assert fast.headers.get("www-authenticate") == route.headers.get("www-authenticate")
    if fast.status_code == 200:
        a, b = fast.json(), route.json()
        assert a["choices"] == b["choices"] and a["model"] == b["model"] and a["usage"] == b["usage"]
        assert fast.headers["x-switchboard-platform"] == route.headers["x-switchboard-platform"]
    else:
        assert fast.json() == route.json()


def test_the_cases_cover_success_and_each_kind_of_refusal(both):
    statuses = {case: both[0].post(CHAT, content=body, headers=headers).status_code
                for case, (headers, body) in CASES.items()}
    assert statuses["ok"] == 200 and statuses["no key"] == 401 and statuses["unknown model"] == 404
    assert statuses["no messages"] == 422 and statuses["not json"] == 422
    assert statuses["unknown field"] == 400


def test_a_stream_comes_through_the_fast_path(both):
    fast, _ = both
    with fast.stream("POST", CHAT, json={"model": "gpt-4o", "messages": MESSAGES, "stream": True}) as answer:
        text = "".join(answer.iter_text())
    assert answer.status_code == 200 and text.rstrip().endswith("data: [DONE]")


def test_what_the_fast_path_takes_and_what_it_leaves_to_the_route():
    assert json_object("application/json", b'{"a": 1}') == {"a": 1}
    assert json_object("Application/JSON; charset=utf-8", b"{}") == {}
    assert json_object("application/json", b"") is None
    assert json_object(None, b"{}") is None
    assert json_object("application/vnd.api+json", b"{}") is None
    assert json_object("application/json", b"\xff\xfe{") is None
    assert json_object("application/json", b"{") is None


class Recorder:
    def __init__(self):
        self.requests = []

    def request(self, endpoint, status, latency_ms):
        self.requests.append((endpoint, status))

    def __getattr__(self, name):  # every other metric: not looked at here
        return lambda *args, **kwargs: None


def test_requests_are_counted_under_their_route_on_either_path():
    metrics = Recorder()
    client = client_for(build_app(idempotency=None, metrics=metrics))
    assert any(m.cls is ChatFastPath for m in client.app.user_middleware)
    client.post(CHAT, json={"model": "gpt-4o", "messages": MESSAGES})
    client.post(CHAT, content=b"{oops", headers={"content-type": "application/json"})  # the route's
    client.get("/v1/models")
    client.get("/no/such/page")
    assert metrics.requests == [(CHAT, 200), (CHAT, 422), ("/v1/models", 200), ("unmatched", 404)]
