"""Resolve each platform's endpoint (base URL + key) from config and the operator's environment.

Only the operator sets where traffic goes: `<PLATFORM>_BASE_URL` and `<PLATFORM>_API_KEY` come from
the process environment, never from a client request. A platform with neither a key nor a base-URL
override is pointed at the local simulator when one is given (the embedded default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlsplit

from providers.wire.base import Endpoint
from providers.settings import ProviderEntry

SIMULATOR_KEY = "sim-local-key"


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    endpoints: dict[str, Endpoint]
    simulated: tuple[str, ...]  # platforms pointed at the simulator

    @property
    def needs_simulator(self) -> bool:
        return bool(self.simulated)


def simulated_platforms(providers: Mapping[str, ProviderEntry], env: Mapping[str, str]) -> tuple[str, ...]:
    """Platforms with no API key and no base-URL override: they go to the simulator."""
    return tuple(
        name
        for name, p in providers.items()
        if not env.get(p.api_key_env) and not env.get(p.base_url_env)
    )


def resolve_endpoints(
    providers: Mapping[str, ProviderEntry], env: Mapping[str, str], simulator_url: str | None
) -> EndpointPlan:
    """`providers` is the configuration's `providers:` section (platform -> entry)."""
    simulated = simulated_platforms(providers, env) if simulator_url else ()
    endpoints: dict[str, Endpoint] = {}
    for name, p in providers.items():
        if name in simulated:
            base = simulator_url.rstrip("/") + urlsplit(p.base_url).path  # same path, local host
            key = SIMULATOR_KEY
        else:
            base = (env.get(p.base_url_env) or p.base_url).rstrip("/")
            key = env.get(p.api_key_env, "")
        endpoints[name] = Endpoint(
            platform=name,
            protocol=p.protocol,
            base_url=base,
            api_key=key,
            timeout_s=p.timeout_s,
            connect_timeout_s=p.connect_timeout_s,
        )
    return EndpointPlan(endpoints=endpoints, simulated=simulated)
