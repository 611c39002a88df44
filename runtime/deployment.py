"""The Serve ingress deployment: one replica = one process with its own FastAPI app, looking up
the named actors (providers, ledger) once at start. Assembly: it mounts every router, the HTTP
edge's (runtime/http) and the agent pipelines' (runtime/agent_routes.py)."""
from __future__ import annotations

import asyncio
import sys
from typing import Any

from fastapi import FastAPI
from ray import serve

from runtime import agent_routes
from runtime.http.api import Services, create_api
from runtime.http.auth import Authenticator
from runtime.config import load_config
from runtime.http.idempotency.actor import open_idempotency_store
from runtime.http.key_rate import open_key_rate
from runtime.logs import configure_logging, flush_logs
from runtime.metrics import BufferedMetrics, GatewayMetrics, flush_forever
from runtime.http.schemas import Health
from agents.coordinator import lookup_coordinator
from providers.clock import SYSTEM_CLOCK
from runtime.wiring import BootInfo, build_gateway, lookup_actors

HEALTH_TIMEOUT_S = 2.0


def build_api(services: Services) -> FastAPI:
    """The whole HTTP app of one replica: the edge's routes and the agent pipelines'."""
    return create_api(services, extra_routers=[agent_routes.router(services)])


@serve.deployment(
    name="gateway",
    ray_actor_options={"num_cpus": 0.1},
    max_ongoing_requests=256,
    graceful_shutdown_timeout_s=5,
    graceful_shutdown_wait_loop_s=0.5,
    # the request log is ours (runtime/http/middleware.py): Serve's own access line per request,
    # and its INFO records, would cost the replica a log record each
    logging_config={"enable_access_log": False, "log_level": "WARNING"},
)
@serve.ingress()
class GatewayDeployment:
    async def __init__(self, boot: BootInfo) -> None:
        self.boot = boot
        self.config = load_config(boot.config_path)
        self.catalog = self.config.catalog()
        self.handles = await lookup_actors(self.config, boot.namespace)
        self.providers, self.ledger = self.handles.providers, self.handles.ledger
        self.metrics = BufferedMetrics(GatewayMetrics())  # the request path only adds to dicts
        self._metrics_flusher = asyncio.get_running_loop().create_task(
            flush_forever(self.metrics.flush, SYSTEM_CLOCK.sleep))
        # every call path books a pending row first: build_gateway talks to the ledger through
        # the client with timeouts, retries and the admission/finalize methods
        self.gateway = await build_gateway(self.config, boot, self.handles, self.metrics)
        self.ledger_client = self.gateway.ledger
        self.coordinator = await lookup_coordinator(boot.namespace)
        # JSON lines, redacted (runtime/logs.py), on the process's own stderr: Serve's
        # throughput mode swaps sys.stderr for a shim that turns each line into a log record
        configure_logging(stream=sys.__stderr__, buffered=True)
        shared = {"redis_url": boot.redis_url, "ray_namespace": boot.namespace}
        self.idempotency = await open_idempotency_store(**shared)
        self.key_rate = await open_key_rate(**shared)

    async def __del__(self) -> None:
        """Serve calls this when the replica stops: rows still queued go to the ledger (the
        journal keeps what it has not taken), leased slices go back to their actors, buffered
        metrics and log lines go out."""
        flusher = getattr(self, "_metrics_flusher", None)
        if flusher is not None:
            flusher.cancel()
            self.metrics.flush()
        ledger = getattr(self, "ledger_client", None)
        if ledger is not None:
            await ledger.close()
        gateway = getattr(self, "gateway", None)
        if gateway is not None:
            await gateway.router.pool.close()
        close_key_rate = getattr(getattr(self, "key_rate", None), "close", None)
        if close_key_rate is not None:  # leased key slices go back; Redis closes its pool
            await close_key_rate()
        flush_logs()

    def __serve_build_asgi_app__(self):
        return build_api(
            Services(
                config=self.config,
                catalog=self.catalog,
                gateway=self.gateway,
                auth=Authenticator(self.boot.admin_digest, self.ledger_client),
                health=self.health,
                metrics=self.metrics,
                ledger=self.ledger_client,
                coordinator=self.coordinator,
                idempotency=self.idempotency,
                key_rate=self.key_rate,
                providers=self.providers,
            )
        )

    async def health(self) -> Health:
        names = {f"provider:{p}": h for p, h in self.providers.items()} | {"ledger": self.ledger}

        async def ping(handle: Any) -> bool:
            try:
                await asyncio.wait_for(handle.__ray_ready__.remote(), HEALTH_TIMEOUT_S)
                return True
            except Exception:
                return False

        results = await asyncio.gather(*(ping(h) for h in names.values()))
        actors = dict(zip(names, ["ok" if r else "unreachable" for r in results]))
        warning = None
        if self.boot.simulated:
            warning = (
                f"SIMULATED UPSTREAM: {', '.join(self.boot.simulated)} answered by the local "
                f"simulator at {self.boot.simulator_url} (no API key set)"
            )
        return Health(
            status="ok" if all(results) else "starting",
            simulated_platforms=list(self.boot.simulated),
            simulator_url=self.boot.simulator_url,
            warning=warning,
            actors=actors,
        )
