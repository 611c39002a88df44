"""The response cache through the HTTP layer: hits cost nothing and reach no provider."""
import pytest
from fastapi.testclient import TestClient

from providers.clock import FakeClock
from runtime.deployment import build_api
from runtime.http.api import Services
from runtime.http.auth import Authenticator, key_digest
from runtime.cache.keys import CachePolicy
from runtime.cache.response_cache import ResponseCache
from runtime.cache.stores import MemoryStore
from runtime.config import load_config
from runtime.core.gateway import Gateway
from runtime.core.router import Router
from runtime.http.schemas import Health
from tests.unit.http.test_api import ADMIN, ListLedger
from tests.unit.core.test_router import FakePool

CFG = load_config()


@pytest.fixture
def api():
    clock = FakeClock()
    ledger, pool = ListLedger(), FakePool({p: "ok" for p in CFG.platforms})
    cache = ResponseCache(MemoryStore(clock=clock), policy=CachePolicy(ttl_s=60), clock=clock)
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict, cache=cache)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    async def summary(_):
        return {}

    client = TestClient(build_api(Services(CFG, CFG.catalog(), gateway, Authenticator(key_digest(ADMIN)), health, summary)))
    client.headers["authorization"] = f"Bearer {ADMIN}"
    client.ledger, client.pool, client.clock = ledger, pool, clock
    return client


def chat(api, content="What is a CRDT?", **extra):
    body = {"model": "switchboard/chat-speed", "temperature": 0,
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}], **extra}
    return api.post("/v1/chat/completions", json=body)


def test_second_identical_request_is_a_free_hit_with_no_provider_call(api):
    first = chat(api)
    second = chat(api)
    assert first.headers["x-switchboard-cache"] == "miss" and second.headers["x-switchboard-cache"] == "hit"
    assert len(api.pool.calls) == 1
    assert float(second.headers["x-switchboard-cost-usd"]) == 0
    assert second.json()["choices"][0]["message"]["content"] == first.json()["choices"][0]["message"]["content"]
    miss_row, hit_row = api.ledger.rows
    assert hit_row["status"] == "cached" and hit_row["cache_hit"] and hit_row["cost_usd"] == 0
    assert hit_row["saved_usd"] == pytest.approx(miss_row["cost_usd"]) and miss_row["cost_usd"] > 0
    stats = api.get("/api/ai/cache/stats").json()
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["saved_usd"] == pytest.approx(miss_row["cost_usd"])


@pytest.mark.parametrize("change", [
    {"content": "What is a crdt?"},          # case matters: no lowercasing
    {"content": "What is a CRDT? "},         # whitespace matters
    {"temperature": 0.1},
    {"max_tokens": 7},
])
def test_any_meaningful_difference_is_a_miss(api, change):
    chat(api)
    content = change.pop("content", "What is a CRDT?")
    assert chat(api, content, **change).headers["x-switchboard-cache"] == "miss"
    assert len(api.pool.calls) == 2


def test_hot_requests_and_opt_out_are_not_cached(api):
    assert chat(api, temperature=0.9).headers["x-switchboard-cache"] == "bypass"
    assert chat(api, temperature=0.9).headers["x-switchboard-cache"] == "bypass"
    assert chat(api, cache="off").headers["x-switchboard-cache"] == "bypass"
    assert chat(api, temperature=0.9, cache="exact").headers["x-switchboard-cache"] == "miss"
    assert chat(api, temperature=0.9, cache="exact").headers["x-switchboard-cache"] == "hit"


def test_ttl_expiry_on_the_fake_clock(api):
    chat(api)
    api.clock.advance(61)
    assert chat(api).headers["x-switchboard-cache"] == "miss"


def test_cached_answer_replays_as_a_stream(api):
    text = chat(api).json()["choices"][0]["message"]["content"]
    r = chat(api, stream=True, stream_options={"include_usage": True})
    assert r.headers["x-switchboard-cache"] == "hit"
    assert text in r.text and r.text.rstrip().endswith("data: [DONE]")
    assert len(api.pool.calls) == 1


def test_streamed_miss_fills_the_cache(api):
    chat(api, stream=True)
    assert chat(api).headers["x-switchboard-cache"] == "hit"
    assert len(api.pool.calls) == 1


class UpsertLedger:
    """Pending and final rows by request_id, as the real ledger keeps them; notes when the
    pending row was opened."""

    def __init__(self) -> None:
        self.rows: dict[str, dict] = {}
        self.opened = None

    async def admit_and_open_pending(self, row, budgets):
        from runtime.finops.budget import Admitted

        self.rows.setdefault(row.request_id, {"status": "pending"})
        if self.opened is None:
            import asyncio

            self.opened = asyncio.Event()
        self.opened.set()
        return Admitted(row.request_id)

    async def finalize(self, row):
        self.rows[row["request_id"]] = row

    record = finalize


class WaitsForTheLedger(MemoryStore):
    """A shared store whose read finishes only once the pending row is open: it hangs (and the
    test times out) unless the two run side by side."""

    def __init__(self, ledger, **kw) -> None:
        super().__init__(**kw)
        self.ledger = ledger

    async def get(self, key):
        import asyncio

        for _ in range(1000):
            if self.ledger.opened is not None:
                break
            await asyncio.sleep(0)
        await asyncio.wait_for(self.ledger.opened.wait(), 5)
        return await super().get(key)


def test_without_budgets_the_store_read_and_the_pending_row_run_side_by_side_and_a_hit_closes_its_row():
    clock = FakeClock()
    ledger, pool = UpsertLedger(), FakePool({p: "ok" for p in CFG.platforms})
    cache = ResponseCache(WaitsForTheLedger(ledger, clock=clock), policy=CachePolicy(ttl_s=60), clock=clock)
    gateway = Gateway(CFG, CFG.catalog(), Router(pool), ledger, row_factory=dict, cache=cache)

    async def health():
        return Health(status="ok", simulated_platforms=[], simulator_url=None, actors={})

    client = TestClient(build_api(Services(CFG, CFG.catalog(), gateway, Authenticator(key_digest(ADMIN)), health,
                                           lambda _: {})))
    client.headers["authorization"] = f"Bearer {ADMIN}"
    first, second = chat(client), chat(client)
    assert (first.headers["x-switchboard-cache"], second.headers["x-switchboard-cache"]) == ("miss", "hit")
    assert len(pool.calls) == 1
    hit_row = ledger.rows[second.headers["x-switchboard-request-id"]]
    assert hit_row["status"] == "cached" and hit_row["cost_usd"] == 0  # its pending row did not stay
    assert all(r["status"] != "pending" for r in ledger.rows.values())
