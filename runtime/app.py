"""Start Switchboard: Ray, the named actors, the simulator when needed, and the Serve app."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

import ray
from ray import serve

from agents.coordinator import (
    BLACKBOARD_ACTOR_NAME, COORDINATOR_ACTOR_NAME, CoordinatorActor, coordinator_actor_options,
)
from blackboard.board import BlackboardActor, blackboard_actor_options
from providers.actor import ProviderActor, provider_actor_options
from providers.secret import Secret
from providers.endpoints import EndpointPlan, resolve_endpoints, simulated_platforms
from runtime.finops.admin_key import AdminKey, load_or_create_admin_key
from runtime.http.auth import key_digest
from runtime.config import Config, load_config
from runtime.deployment import GatewayDeployment
from runtime.finops.ledger import LedgerActor, ledger_actor_options
from runtime.settings import Settings
from runtime.wiring import LEDGER_ACTOR_NAME, BootInfo
from runtime.simulator_process import SimulatorProcess

APP_NAME = "switchboard"
LEDGER_FILE = "ledger.sqlite3"
HEAD_NODE = "node:__internal_head__"  # a resource only the head node has


@dataclass
class RunningApp:
    settings: Settings
    config: Config
    admin_key: AdminKey
    boot: BootInfo
    url: str
    simulator: SimulatorProcess | None = None
    actors: dict[str, Any] = field(default_factory=dict)
    app_name: str = APP_NAME

    def stop(self) -> None:
        """Stop taking requests (Serve drains in-flight ones), then drain the ledger so every
        finished request's row is on disk, then end the actors and the simulator."""
        try:
            serve.delete(self.app_name)
        except Exception:
            pass
        ledger = self.actors.get(LEDGER_ACTOR_NAME)
        if ledger is not None:
            try:
                ray.get(ledger.drain.remote(), timeout=10)
            except Exception:
                pass
        for handle in self.actors.values():
            try:
                ray.kill(handle, no_restart=True)
            except Exception:
                pass
        if self.simulator is not None:
            self.simulator.stop()

    def shutdown(self) -> None:
        """`stop`, then Serve (its proxies, HAProxy included, stop before Ray goes), then Ray:
        for a process that owns its cluster (`switchboard serve`, the bench)."""
        self.stop()
        try:
            serve.shutdown()
        finally:
            ray.shutdown()


def use_loopback_only() -> None:
    """Embedded mode: Ray otherwise swaps 127.0.0.1 for the host's interface address. In
    single-machine mode every Ray socket stays on loopback."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def init_ray(settings: Settings, **overrides: Any) -> None:
    if ray.is_initialized():
        return
    use_loopback_only()
    options: dict[str, Any] = {
        "namespace": settings.namespace,
        "_node_ip_address": "127.0.0.1",
        "include_dashboard": True,
        "dashboard_host": "127.0.0.1",
        "configure_logging": False,
    }
    options.update(overrides)
    ray.init(**options)


def start_actors(
    config: Config, boot: BootInfo, plan: EndpointPlan, env: Mapping[str, str], db_path: str
) -> dict[str, Any]:
    """The named, detached actors (providers, ledger); existing ones are reused (get_if_exists),
    so a redeploy or a second builder finds the same instances."""
    actors: dict[str, Any] = {}
    for platform in config.platforms:
        key_env = config.providers[platform].api_key_env
        # An explicit environment (tests, serve_app.build_with) hands the key over masked; a
        # runtime_env would write it into Ray's agent logs. Otherwise the actor reads its own env.
        key = Secret(env[key_env]) if env is not os.environ and env.get(key_env) else None
        actors[f"provider:{platform}"] = (
            ray.remote(ProviderActor)
            .options(**provider_actor_options(platform, boot.namespace), get_if_exists=True)
            .remote(config.platform_settings(platform), plan.endpoints[platform].base_url, platform in plan.simulated, api_key=key)
        )
    # The ledger's SQLite file lives on one disk: keep the actor (and its restarts) on the head.
    ledger_options = {**ledger_actor_options(LEDGER_ACTOR_NAME, boot.namespace), "resources": {HEAD_NODE: 0.001}}
    actors[LEDGER_ACTOR_NAME] = (
        ray.remote(LedgerActor)
        .options(**ledger_options, get_if_exists=True)
        .remote(db_path, request_timeout_s=config.server.request_timeout_s,
                alert_webhook_url=config.budgets.alert_webhook_url)
    )
    actors[BLACKBOARD_ACTOR_NAME] = BlackboardActor.options(
        **blackboard_actor_options(BLACKBOARD_ACTOR_NAME, boot.namespace), get_if_exists=True
    ).remote(redis_url=boot.redis_url, namespace=boot.namespace)
    actors[COORDINATOR_ACTOR_NAME] = (
        ray.remote(CoordinatorActor)
        .options(**coordinator_actor_options(COORDINATOR_ACTOR_NAME, boot.namespace), get_if_exists=True)
        .remote(boot)
    )
    ray.get([a.__ray_ready__.remote() for a in actors.values()])
    actors[COORDINATOR_ACTOR_NAME].ready.remote()  # assemble its gateway now, without waiting
    return actors


@dataclass(frozen=True)
class Prepared:
    """What a Serve application needs before it is bound: the replicas' BootInfo (no secrets),
    the admin key (for the banner) and the named actors already answering."""

    config: Config
    admin_key: AdminKey
    boot: BootInfo
    actors: dict[str, Any]


def prepare(
    settings: Settings, config: Config, env: Mapping[str, str], simulator_url: str | None
) -> Prepared:
    """Shared by `start` (embedded) and `runtime.serve_app.build` (`serve deploy`): admin key,
    endpoint plan, BootInfo and the named actors. Ray must be initialized."""
    admin = load_or_create_admin_key(settings.data_dir, settings.admin_key)
    plan = resolve_endpoints(config.providers, env, simulator_url)
    boot = BootInfo(
        namespace=settings.namespace,
        config_path=settings.config_path,
        admin_digest=key_digest(admin.value),
        simulated=plan.simulated,
        simulator_url=simulator_url if plan.simulated else None,
        redis_url=settings.redis_url,
        data_dir=str(settings.data_dir),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    actors = start_actors(config, boot, plan, env, str(settings.data_dir / LEDGER_FILE))
    return Prepared(config, admin, boot, actors)


def start(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    simulator_latency_scale: float = 1.0,
    app_name: str = APP_NAME,
    route_prefix: str = "/",
    ray_init: Mapping[str, Any] | None = None,
) -> RunningApp:
    env = os.environ if env is None else env
    config = load_config(settings.config_path)
    simulator = None
    if simulated_platforms(config.providers, env):
        simulator = SimulatorProcess.start(
            latency_scale=simulator_latency_scale, config_path=settings.config_path
        )
    try:
        init_ray(settings, **dict(ray_init or {}))
        prepared = prepare(settings, config, env, simulator.url if simulator else None)
        serve.start(http_options={"host": settings.host, "port": settings.port})
        serve.run(
            GatewayDeployment.options(num_replicas=config.server.replicas).bind(prepared.boot), name=app_name, route_prefix=route_prefix,
            blocking=False,
        )
    except BaseException:
        if simulator is not None:
            simulator.stop()
        raise
    prefix = "" if route_prefix == "/" else route_prefix
    return RunningApp(
        settings, config, prepared.admin_key, prepared.boot,
        f"http://{settings.host}:{settings.port}{prefix}", simulator, prepared.actors, app_name,
    )


def announce(app: RunningApp, out=sys.stderr) -> None:
    line = "=" * 78
    print(line, file=out)
    print(f"Switchboard is listening on {app.url}", file=out)
    print(f"  OpenAI-compatible base URL: {app.url}/v1", file=out)
    if app.admin_key.created:
        print(f"  ADMIN KEY (shown once, stored in {app.admin_key.path}):", file=out)
        print(f"    {app.admin_key.value}", file=out)
    elif app.admin_key.path:
        print(f"  admin key: in {app.admin_key.path}", file=out)
    else:
        print("  admin key: from SWITCHBOARD_ADMIN_KEY", file=out)
    if app.boot.simulated:
        print(f"  !! SIMULATED UPSTREAM for {', '.join(app.boot.simulated)}: no API key set, these", file=out)
        print(f"  !! platforms are answered by the local simulator at {app.boot.simulator_url}", file=out)
    print(line, file=out, flush=True)
