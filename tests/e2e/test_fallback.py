"""Fallback: the chain's first platform is unreachable → the second serves."""
from __future__ import annotations

import httpx
import pytest

from runtime.simulator_process import free_port
from tests.e2e.conftest import auth_headers, live_switchboard

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    dead = free_port()  # nothing listens here
    env = {"GROQ_BASE_URL": f"http://127.0.0.1:{dead}/openai/v1", "GROQ_API_KEY": "gsk_test_not_used"}
    with live_switchboard(tmp_path_factory.mktemp("fallback"), serve_port, env=env) as running:
        yield running


def test_dead_first_platform_falls_back_to_second(app):
    assert "groq" not in app.boot.simulated
    r = httpx.post(
        f"{app.url}/api/ai/route",
        json={"query": "hello", "use_case": "chat", "priority": "speed"},
        headers=auth_headers(),
        trust_env=False,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["chain"] == "chat_speed"
    assert (body["platform"], body["model"]) == ("gemini", "gemini-2.5-flash")
    assert body["fallback_used"] is True and body["attempts"] == 2
    assert r.headers["x-switchboard-fallback"] == "true" and r.headers["x-switchboard-attempts"] == "2"
    assert "gsk_test_not_used" not in r.text
