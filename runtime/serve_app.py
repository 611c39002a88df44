"""The application builder for `serve deploy` / `serve run`: `import_path: runtime.serve_app:build`.

Serve calls `build(args)` inside the cluster (Ray is already up) with the `args:` mapping of the
application in serve_config.yaml. It creates the named, detached actors (reusing running ones:
get_if_exists) and returns the ingress bound to its BootInfo — the same steps as the embedded
`switchboard serve` (runtime/app.py `prepare`), minus starting Ray, Serve and the simulator.

Secrets never come from `args` (the config file is not a secret store): the admin key comes from
SWITCHBOARD_ADMIN_KEY or `<data_dir>/admin.key`, provider keys from the nodes' environment.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping

from ray.serve import Application

from runtime.app import Prepared, prepare
from runtime.config import load_config
from runtime.deployment import GatewayDeployment
from runtime.logs import get_logger
from runtime.settings import Settings

log = get_logger("switchboard.serve_app")

ARG_NAMES = ("config_path", "data_dir", "namespace", "redis_url", "simulator_url")


@dataclass(frozen=True, slots=True)
class DeployArgs:
    """The builder's arguments: each overrides its environment variable in `Settings`."""

    config_path: str | None = None
    data_dir: str | None = None
    namespace: str | None = None
    redis_url: str | None = None
    simulator_url: str | None = None

    @classmethod
    def parse(cls, args: Mapping[str, Any] | None) -> "DeployArgs":
        args = dict(args or {})
        unknown = sorted(set(args) - set(ARG_NAMES))
        if unknown:
            raise ValueError(f"unknown serve_app args {unknown}; expected some of {list(ARG_NAMES)}")
        for name, value in args.items():
            if value is not None and not isinstance(value, str):
                raise ValueError(f"serve_app arg {name!r} must be a string, got {type(value).__name__}")
        return cls(**{k: (v or None) for k, v in args.items()})

    def settings(self, env: Mapping[str, str]) -> Settings:
        base = Settings.from_env(env)
        overrides: dict[str, Any] = {}
        if self.config_path:
            overrides["config_path"] = self.config_path
        if self.data_dir:
            overrides["data_dir"] = Path(self.data_dir).expanduser().resolve()
        if self.namespace:
            overrides["namespace"] = self.namespace
        if self.redis_url:
            overrides["redis_url"] = self.redis_url
        return replace(base, **overrides)


def build(args: dict[str, Any]) -> Application:
    """Create (or find) the named actors and return the bound ingress deployment."""
    return build_with(args, os.environ)[0]


def build_with(args: Mapping[str, Any] | None, env: Mapping[str, str]) -> tuple[Application, Prepared]:
    """`build` with an explicit environment (tests pass one without vendor keys); also returns
    what was prepared (actors, admin key, BootInfo)."""
    options = DeployArgs.parse(args)
    settings = options.settings(env)
    config = load_config(settings.config_path)
    simulator_url = options.simulator_url or env.get("SWITCHBOARD_SIMULATOR_URL") or None
    prepared = prepare(settings, config, env, simulator_url)
    missing = [
        p for p in config.platforms
        if p not in prepared.boot.simulated and not env.get(config.providers[p].api_key_env)
    ]
    if missing:
        log.warning("platforms_without_api_key", platforms=missing,
                    hint="set their *_API_KEY on every node, or simulator_url for a trial")
    log.info("serve_app_built", namespace=settings.namespace, simulated=list(prepared.boot.simulated))
    return GatewayDeployment.options(num_replicas=config.server.replicas).bind(prepared.boot), prepared
