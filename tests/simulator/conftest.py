"""In-process simulator fixtures: a fake clock, no latency, an httpx client over ASGI."""
from __future__ import annotations

import httpx
import pytest

from providers.clock import FakeClock
from providers.simulator import SimulatorConfig, create_app

@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_client(clock):
    """`make_client(**SimulatorConfig fields)` → (client, simulator); no latency by default."""
    clients: list[httpx.AsyncClient] = []

    def make(**options):
        options.setdefault("latency_scale", 0.0)
        app = create_app(SimulatorConfig(clock=clock, **options))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim")
        clients.append(client)
        return client, app.state.simulator

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
def client(make_client):
    return make_client()[0]


@pytest.fixture
def sim(make_client):
    """(client, simulator) of one app."""
    return make_client()
