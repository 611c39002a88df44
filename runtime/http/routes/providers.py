"""Operator view of the platforms: models, breaker states, limit headroom, disabled keys."""
from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from runtime.http.auth import Principal
from runtime.http.errors import ApiError
from runtime.http.services import Services

STATUS_TIMEOUT_S = 2.0


def router(services: Services) -> APIRouter:
    router = APIRouter(tags=["providers"])
    principal = services.principal()

    def handle(platform: str) -> Any:
        handle = (services.providers or {}).get(platform)
        if handle is None:
            raise ApiError(404, "not_found", f"unknown platform {platform!r}", field="platform")
        return handle

    async def status_of(platform: str, handle: Any) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(handle.status.remote(), STATUS_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - an unreachable actor is a status, not a 500
            return {"platform": platform, "unreachable": type(exc).__name__}

    @router.get("/api/ai/providers")
    async def providers(who: Principal = Depends(principal)) -> dict[str, Any]:
        """Each platform's models with breaker state and limit headroom, and whether its key is
        disabled (after an authentication or out-of-credit error)."""
        handles = services.providers or {}
        statuses = await asyncio.gather(*(status_of(p, h) for p, h in handles.items()))
        return {"platforms": dict(zip(handles, statuses))}

    @router.post("/api/ai/providers/{platform}/enable")
    async def enable(platform: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Re-enable a platform key disabled after an authentication or out-of-credit error."""
        if not who.is_admin:
            raise ApiError(403, "forbidden", "only the admin key can re-enable a platform")
        was_disabled = await handle(platform).enable.remote()
        return {"platform": platform, "was_disabled": was_disabled}

    return router
