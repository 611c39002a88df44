"""The HTTP layer on fake services (no Ray): a fake provider pool, a list ledger, and an
authenticator that knows an admin key and user keys with a requests/minute limit."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from runtime.deployment import build_api
from runtime.http.api import Services
from runtime.http.auth import bearer_token
from runtime.config import load_config
from runtime.http.errors import ApiError
from runtime.core.gateway import Gateway
from runtime.http.idempotency.store import MemoryIdempotencyStore
from runtime.core.router import Router
from runtime.http.schemas import Health
from tests.unit.http.test_api import ListLedger
from tests.unit.core.test_router import FakePool

CFG = load_config()
ADMIN = "sk-sb-admin-hardening-test"
USER_A = "sk-sb-user-a-hardening"
USER_B = "sk-sb-user-b-hardening"


@dataclass(frozen=True)
class FakePrincipal:
    user_id: str
    key_id: str | None
    is_admin: bool
    rpm: int | None = None
    agent: str | None = None
    budgets: tuple = ()


class TokenAuth:
    """Known tokens → principals (the shape runtime/http/auth.py's Principal has, rpm included)."""

    def __init__(self, rpm: int | None = None) -> None:
        self.principals = {
            ADMIN: FakePrincipal("admin", "admin", True),
            USER_A: FakePrincipal("alice", "key_a", False, rpm),
            USER_B: FakePrincipal("bob", "key_b", False, rpm),
        }

    async def authenticate(self, request) -> FakePrincipal:
        who = self.principals.get(bearer_token(request))
        if who is None:
            raise ApiError(401, "unauthorized", "invalid API key", headers={"www-authenticate": "Bearer"})
        return who


def build_app(pool=None, *, config=CFG, rpm=None, idempotency="memory", key_rate=None, metrics=None):
    pool = pool or FakePool({p: "ok" for p in config.platforms})
    ledger = ListLedger()
    gateway = Gateway(config, config.catalog(), Router(pool), ledger, row_factory=dict)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(user_id):
        return {"rows": len(ledger.rows)}

    store = MemoryIdempotencyStore() if idempotency == "memory" else idempotency
    services = Services(config, config.catalog(), gateway, TokenAuth(rpm), health, summary,
                        idempotency=store, key_rate=key_rate, **({"metrics": metrics} if metrics else {}))
    app = build_api(services)
    app.state.ledger, app.state.pool, app.state.store = ledger, pool, store
    return app


def client_for(app, token: str = ADMIN) -> TestClient:
    client = TestClient(app, raise_server_exceptions=False)
    client.headers["authorization"] = f"Bearer {token}"
    client.ledger, client.pool = app.state.ledger, app.state.pool
    return client


@pytest.fixture
def api():
    return client_for(build_app())
