"""One real simulator per test module, served by uvicorn on a free loopback port in a thread, so
the official SDKs talk to it over real HTTP."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from providers.simulator import SimulatorConfig, create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, **options) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(SimulatorConfig(**options))
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        give_up = time.monotonic() + 10
        while not self.server.started:  # start-up of a server thread, not a test timing
            if time.monotonic() > give_up or not self.thread.is_alive():
                raise RuntimeError("simulator did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(5)

    def admin(self, method: str, path: str, json=None) -> httpx.Response:
        r = httpx.request(method, f"{self.url}/_sim/{path}", json=json, trust_env=False)
        r.raise_for_status()
        return r

    def fault(self, **rule) -> None:
        self.admin("POST", "faults", rule)


@pytest.fixture(scope="module")
def sim():
    with ServerThread(latency_scale=0.0) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(sim):
    sim.admin("POST", "reset")
    yield
