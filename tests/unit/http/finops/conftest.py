"""FinOps over HTTP without Ray: the real API on a real LedgerActor (driven as a plain class, on
a temporary SQLite file) and a fake provider pool whose usage stays within each request's
reservation. One fake clock drives the ledger, the gateway and the authenticator."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import httpx
import pytest

from providers.clock import FakeClock
from providers.tokens import estimate_prompt_tokens
from providers.types import ChatResponse, ServerError, UpstreamTimeoutError, Usage
from runtime.deployment import build_api
from runtime.http.api import Services
from runtime.http.auth import Authenticator, key_digest
from runtime.config import Config, load_config
from runtime.core.gateway import Gateway
from runtime.finops.ledger import LedgerActor
from runtime.finops.ledger_store import FinalRow
from runtime.core.router import Router
from runtime.http.schemas import Health

ADMIN = "sk-sb-admin-finops-http"
CFG = load_config()
NOON_2026_01_01 = 1_767_225_600.0 + 12 * 3600


class BoundedPool:
    """Answers every call with the prompt estimate and the full max_tokens as usage (what a
    reservation covers). `on_call(platform, request)` runs before the answer, e.g. to look at
    the ledger while the call is "in flight"; `fail` makes a platform answer a 500, `time_out`
    a read timeout (sent, never answered: the vendor may have billed it)."""

    def __init__(self, config: Config) -> None:
        self.catalog = config.catalog()
        self.calls: list[tuple[str, str, str]] = []
        self.on_call: Callable[[str, Any], Any] | None = None
        self.fail: set[str] = set()
        self.time_out: set[str] = set()

    async def complete(self, platform: str, request, deadline: float, *, wait=False, retry=True):
        self.calls.append((platform, request.model, request.request_id))
        if self.on_call is not None:
            await self.on_call(platform, request)
        await asyncio.sleep(0)  # let concurrent requests interleave
        if platform in self.fail:
            return ServerError("boom", platform=platform, model=request.model, status=500)
        if platform in self.time_out:
            return UpstreamTimeoutError("timeout waiting for response", platform=platform, model=request.model,
                                        unanswered=1)
        spec = self.catalog.get(platform, request.model)
        usage = Usage(estimate_prompt_tokens(request.messages, spec), request.max_tokens or 1024)
        return ChatResponse("answer", usage, "stop", platform, request.model)

    async def stream(self, platform: str, request, deadline: float, *, wait=False):
        from providers.types import StreamEvent

        self.calls.append((platform, request.model, request.request_id))
        if self.on_call is not None:
            await self.on_call(platform, request)
        yield StreamEvent("delta", "streamed")
        yield StreamEvent("done", usage=Usage(10, 2), finish_reason="stop")


class Harness:
    def __init__(self, config: Config, tmp_path, clock: FakeClock) -> None:
        self.config, self.clock = config, clock
        self.db_path = str(tmp_path / "ledger.sqlite3")
        self.ledger = LedgerActor(self.db_path, clock, request_timeout_s=config.server.request_timeout_s)
        self.pool = BoundedPool(config)
        self.gateway = Gateway(config, config.catalog(), Router(self.pool), self.ledger,
                               row_factory=FinalRow, clock=clock)
        self.auth = Authenticator(key_digest(ADMIN), self.ledger, clock)

        async def health() -> Health:
            return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

        services = Services(config, config.catalog(), self.gateway, self.auth, health, ledger=self.ledger)
        self.app = build_api(services)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://test")

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.bearer(ADMIN)

    async def new_key(self, user_id: str, **fields: Any) -> dict[str, Any]:
        r = await self.http.post("/api/keys", json={"user_id": user_id, **fields}, headers=self.admin)
        assert r.status_code == 201, r.text
        return r.json()

    async def route(self, key: str, **body: Any) -> httpx.Response:
        payload = {"query": "What is a CRDT?", "use_case": "bulk", "max_tokens": 1000, **body}
        return await self.http.post("/api/ai/route", json=payload, headers=self.bearer(key))

    async def close(self) -> None:
        await self.http.aclose()
        await self.ledger.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_start=NOON_2026_01_01)


@pytest.fixture
async def make_harness(tmp_path, clock):
    """Harnesses on other configurations (closed at the end of the test)."""
    made: list[Harness] = []

    def make(config: Config = CFG) -> Harness:
        made.append(Harness(config, tmp_path, clock))
        return made[-1]

    yield make
    for harness in made:
        await harness.close()


@pytest.fixture
async def h(tmp_path, clock):
    harness = Harness(CFG, tmp_path, clock)
    yield harness
    await harness.close()
