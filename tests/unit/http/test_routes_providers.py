"""GET /api/ai/providers and the admin re-enable endpoint, over stand-in actor handles."""
import asyncio

from fastapi import FastAPI
from fastapi.testclient import TestClient

from runtime.http.routes import providers as routes_providers
from runtime.http.auth import Principal
from runtime.http.errors import install_error_handlers


class Remote:
    def __init__(self, fn):
        self.fn = fn

    def remote(self, *args):
        return self.fn(*args)


class FakeProvider:
    def __init__(self, platform, disabled=None, hang=False):
        self.platform, self.disabled, self.hang = platform, disabled, hang
        self.status = Remote(self._status)
        self.enable = Remote(self._enable)

    async def _status(self):
        if self.hang:
            await asyncio.sleep(60)
        return {"platform": self.platform, "disabled": self.disabled,
                "models": {"m": {"breaker": {"state": "open"}, "limits": {"rpm": {"remaining": 3}}}}}

    async def _enable(self):
        was, self.disabled = self.disabled is not None, None
        return was


class Services:
    def __init__(self, providers, admin=True):
        self.providers = providers
        self.who = Principal(user_id="u1", key_id="k1", is_admin=admin)

    def principal(self):
        async def dependency():
            return self.who
        return dependency


def client(services):
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(routes_providers.router(services))
    return TestClient(app)


def test_lists_every_platform_with_breaker_and_headroom(monkeypatch):
    monkeypatch.setattr(routes_providers, "STATUS_TIMEOUT_S", 0.05)
    providers = {"openai": FakeProvider("openai", disabled={"kind": "authentication"}),
                 "groq": FakeProvider("groq", hang=True)}
    body = client(Services(providers)).get("/api/ai/providers").json()["platforms"]
    assert body["openai"]["disabled"] == {"kind": "authentication"}
    assert body["openai"]["models"]["m"]["breaker"]["state"] == "open"
    assert body["groq"] == {"platform": "groq", "unreachable": "TimeoutError"}


def test_enable_is_admin_only_and_reports_what_it_did():
    providers = {"openai": FakeProvider("openai", disabled={"kind": "out_of_credit"})}
    assert client(Services(providers, admin=False)).post("/api/ai/providers/openai/enable").status_code == 403
    c = client(Services(providers))
    assert c.post("/api/ai/providers/openai/enable").json() == {"platform": "openai", "was_disabled": True}
    assert c.post("/api/ai/providers/openai/enable").json()["was_disabled"] is False
    r = c.post("/api/ai/providers/nope/enable")
    assert r.status_code == 404 and r.json()["error"]["field"] == "platform"
