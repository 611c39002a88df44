"""Request caps, refused upstream-redirect fields, and the error body contract: every failure
is `{"error": {type, message, field?}}` with the right status, never a stack trace."""
import pytest

from providers.types import UpstreamConnectionError
from runtime.http.schemas import MAX_MESSAGES, MAX_TOKENS_CAP
from tests.unit.http.hardening.conftest import build_app, client_for
from tests.unit.core.test_router import FakePool

MSG = {"role": "user", "content": "x"}


def assert_error(r, status: int, type_: str, field: str | None = None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["type"] == type_ and isinstance(err["message"], str) and err["message"]
    if field is not None:
        assert err["field"] == field
    assert "Traceback" not in r.text


def test_messages_cap(api):
    r = api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [MSG] * (MAX_MESSAGES + 1)})
    assert_error(r, 422, "invalid_request", "messages")
    r = api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [MSG] * MAX_MESSAGES})
    assert r.status_code == 200
    assert api.pool.calls == [("openai", "gpt-4o")]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_cap_on_chat_completions(api, field):
    r = api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [MSG], field: MAX_TOKENS_CAP + 1})
    assert_error(r, 422, "invalid_request", field)
    assert api.pool.calls == []


@pytest.mark.parametrize("path", ["/api/ai/route", "/api/ai/ensemble"])
def test_max_tokens_cap_on_route_and_ensemble(api, path):
    r = api.post(path, json={"query": "hi", "max_tokens": MAX_TOKENS_CAP + 1})
    assert_error(r, 422, "invalid_request", "max_tokens")


@pytest.mark.parametrize("n", [0, 2, 5])
def test_n_must_be_one(api, n):
    r = api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [MSG], "n": n})
    assert_error(r, 422, "invalid_request", "n")


def test_n_of_one_is_accepted(api):
    assert api.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [MSG], "n": 1}).status_code == 200


@pytest.mark.parametrize("field,value", [
    ("api_base", "http://evil.example"), ("base_url", "http://evil.example/v1"),
    ("extra_headers", {"x-forwarded-host": "evil"}), ("headers", {"authorization": "Bearer x"}),
    ("api_key", "sk-stolen"), ("azure_endpoint", "https://evil.example"),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/ai/route", "/api/ai/ensemble"])
def test_upstream_redirect_fields_are_400_on_every_body(api, path, field, value):
    body = {"model": "gpt-4o", "messages": [MSG]} if path.startswith("/v1") else {"query": "hi"}
    r = api.post(path, json={**body, field: value})
    assert_error(r, 400, "forbidden_field", field)
    assert api.pool.calls == []


def test_unknown_path_is_json_404(api):
    assert_error(api.get("/nope"), 404, "not_found")
    assert_error(api.post("/api/ai/nope", json={}), 404, "not_found")


def test_wrong_method_is_json_405_with_allow(api):
    r = api.get("/api/ai/route")
    assert_error(r, 405, "method_not_allowed")
    assert "POST" in r.headers["allow"]


def test_invalid_json_is_422_naming_the_body(api):
    r = api.post("/api/ai/route", content=b"{nope", headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_request", "body")


def test_missing_auth_is_401(api):
    assert_error(api.post("/api/ai/route", json={"query": "hi"}, headers={"authorization": ""}), 401, "unauthorized")


def test_all_upstreams_down_is_503_with_failures():
    down = UpstreamConnectionError("down", platform="x")
    api = client_for(build_app(FakePool({p: down for p in ("groq", "gemini", "openrouter", "openai", "anthropic")})))
    r = api.post("/api/ai/route", json={"query": "hi", "use_case": "chat", "priority": "speed"})
    assert_error(r, 503, "upstream_unavailable")
    assert len(r.json()["error"]["failures"]) == 3


class ExplodingPool(FakePool):
    async def complete(self, platform, request, deadline, *args, **kwargs):
        raise RuntimeError("db password=hunter2 at /srv/internal/path.py")


def test_unexpected_failure_is_500_without_details():
    api = client_for(build_app(ExplodingPool({})))
    r = api.post("/api/ai/route", json={"query": "hi"})
    assert_error(r, 500, "internal_error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text and "/srv" not in r.text


def test_openapi_documents_the_error_body(api):
    schema = api.get("/openapi.json").json()
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    route = schema["paths"]["/api/ai/route"]["post"]["responses"]
    ref = {"$ref": "#/components/schemas/ErrorResponse"}
    assert route["422"]["content"]["application/json"]["schema"] == ref
    assert route["default"]["content"]["application/json"]["schema"] == ref
    assert schema["components"]["schemas"]["ErrorResponse"]["required"] == ["error"]
