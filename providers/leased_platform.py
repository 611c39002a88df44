"""One platform as a replica holds it: a `PlatformCaller` that calls the upstream from this
process, over `LeasedGuard`s fed by one `Renewer` (providers/lease_holder.py). Built from the
platform's settings and what its ProviderActor answered to `lease_settings()`; the actor calls
(`desk`) are injected, so this needs no Ray."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from providers.caller import PlatformCaller
from providers.clock import Clock
from providers.lease_holder import Renewer
from providers.settings import PlatformSettings
from providers.transport import Transport, new_http_client
from providers.types import ProviderError
from providers.wire.base import Endpoint


@dataclass(frozen=True, slots=True)
class LeasedPlatform:
    caller: PlatformCaller
    renewer: Renewer


def leased_platform(
    holder: str,
    settings: PlatformSettings,
    lease_settings: dict[str, Any],
    desk: Any,
    clock: Clock,
    *,
    transport: Any | None = None,
    on_error: Callable[[BaseException], None] | None = None,
) -> LeasedPlatform:
    """`desk` has `renew(Renewal)`, `admit(...)` and `settle(...)` (the actor's side);
    `transport` defaults to an aiohttp-pooled one to the actor's endpoint."""
    if transport is None:
        entry = settings.entry
        endpoint = Endpoint(settings.platform, entry.protocol, lease_settings["base_url"],
                            lease_settings["api_key"].reveal(), entry.timeout_s, entry.connect_timeout_s)
        transport = Transport(endpoint, new_http_client())
    renewer: Renewer | None = None

    def report_disabled(err: ProviderError) -> None:
        if renewer is not None:
            renewer.report_disabled(err)

    def guard(spec):  # type: ignore[no-untyped-def]
        assert renewer is not None
        return renewer.guard(spec)

    caller = PlatformCaller.for_settings(settings, guard, transport, clock=clock, on_disabled=report_disabled)
    disabled = lease_settings.get("disabled")
    caller.disable(disabled)
    renewer = Renewer(holder, desk.renew, desk, clock, term_hint_s=lease_settings["term_s"],
                      on_disabled=caller.disable, counters=lambda: caller.counters, on_error=on_error)
    renewer.disabled = disabled
    return LeasedPlatform(caller, renewer)
