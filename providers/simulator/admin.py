"""Admin endpoints under `/_sim` (no auth, loopback clients only): stats, request log, reset,
faults and limits at run time."""
from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from providers.catalog import UnknownModelError
from providers.simulator.engine import Simulator
from providers.simulator.faults import parse_rules
from providers.simulator.limiter import LimitOverride

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class LimitsUpdate(BaseModel):
    """`POST /_sim/limits`: per-model rpm/tpm/window_s, or (without platform) the default
    window and whether limits are on."""

    model_config = ConfigDict(extra="forbid")

    platform: str | None = None
    model: str | None = None
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    window_s: float | None = Field(default=None, gt=0)
    enabled: bool | None = None


Handler = Callable[[Simulator, Request], Awaitable[Response]]


def _admin(sim: Simulator, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        host = request.client.host if request.client else ""
        if host not in LOOPBACK:
            return JSONResponse({"error": "admin endpoints answer loopback clients only"}, 403)
        try:
            return await handler(sim, request)
        except (ValueError, ValidationError, UnknownModelError) as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return endpoint


async def _body(request: Request) -> Any:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


async def stats(sim: Simulator, request: Request) -> Response:
    return JSONResponse(sim.stats.snapshot())


async def requests_log(sim: Simulator, request: Request) -> Response:
    q = request.query_params
    limit = int(q["limit"]) if "limit" in q else None
    rows = sim.stats.log(limit=limit, platform=q.get("platform"), request_id=q.get("request_id"))
    return JSONResponse({"requests": rows})


async def reset(sim: Simulator, request: Request) -> Response:
    sim.reset()
    return JSONResponse({"reset": True})


async def faults(sim: Simulator, request: Request) -> Response:
    if request.method == "POST":
        for rule in parse_rules(await _body(request)):
            sim.faults.set(sim.canonical_rule(rule))
    elif request.method == "DELETE":
        sim.faults.clear()
    return JSONResponse({"faults": sim.faults.rules()})


async def limits(sim: Simulator, request: Request) -> Response:
    if request.method == "POST":
        update = LimitsUpdate.model_validate(await _body(request))
        if update.platform is None:
            if update.window_s is not None:
                sim.limiter.default_window_s = update.window_s
            if update.enabled is not None:
                sim.limiter.enabled = update.enabled
        else:
            if update.model is None:
                raise ValueError("a per-model limit needs both platform and model")
            spec = sim.catalog.resolve_exact(update.platform, update.model)
            sim.limiter.configure(spec.platform, spec.id, LimitOverride(update.rpm, update.tpm, update.window_s))
    return JSONResponse(_limits_view(sim))


def _limits_view(sim: Simulator) -> dict[str, Any]:
    models = []
    for spec in sim.catalog.live():
        rpm, tpm, window_s = sim.limiter.limits_for(spec)
        models.append({"platform": spec.platform, "model": spec.id, "rpm": rpm, "tpm": tpm,
                       "window_s": window_s})
    return {"enabled": sim.limiter.enabled, "window_s": sim.limiter.default_window_s, "models": models}


def admin_routes(sim: Simulator) -> list[Route]:
    return [
        Route("/_sim/stats", _admin(sim, stats), methods=["GET"]),
        Route("/_sim/requests", _admin(sim, requests_log), methods=["GET"]),
        Route("/_sim/reset", _admin(sim, reset), methods=["POST"]),
        Route("/_sim/faults", _admin(sim, faults), methods=["GET", "POST", "DELETE"]),
        Route("/_sim/limits", _admin(sim, limits), methods=["GET", "POST"]),
    ]
