"""FinOps over HTTP: API keys (admin only) and the cost reports (an admin sees everyone's, a
user key only its owner's), plus the HTTP mapping of budget refusals (402) and an unreachable
ledger (503).

Every parameter is validated before it reaches the ledger (`days` an integer 1-366, `limit`
1-1000, key ids by their shape) and every query is parameterized: SQL metacharacters in a path
or query parameter get a 422 or a correct, empty answer.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.http.auth import ADMIN_USER, Principal
from runtime.finops.errors import BudgetRefusedError, LedgerUnavailableError
from runtime.http.errors import ApiError
from runtime.finops.reports import MAX_DAYS, MAX_LIMIT
from runtime.http.services import Services

KEY_ID = Path(pattern=r"^key_[0-9a-f]{12}$", description="a key id as returned on creation")
USER_ID = Path(min_length=1, max_length=128)
DAYS = Query(30, ge=1, le=MAX_DAYS, description="the last N UTC days, today included")


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@:+-]+$")
    agent: str | None = Field(default=None, min_length=1, max_length=128)
    daily_budget_usd: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False)
    monthly_budget_usd: float | None = Field(default=None, ge=0, le=1e7, allow_inf_nan=False)
    rpm: int | None = Field(default=None, gt=0, le=1_000_000)

    @field_validator("user_id")
    @classmethod
    def _not_admin(cls, user_id: str) -> str:
        if user_id == ADMIN_USER:
            raise ValueError(f"{ADMIN_USER!r} is reserved for the admin key")
        return user_id


def describe_key(record: Any) -> dict[str, Any]:
    """A key's public fields: never the key, never its digest."""
    return {
        "key_id": record.key_id, "user_id": record.user_id, "agent": record.agent,
        "daily_budget_usd": record.daily_budget_usd, "monthly_budget_usd": record.monthly_budget_usd,
        "rpm": record.rpm, "disabled": record.disabled, "created_at": record.created_at,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _own_scope(who: Principal) -> str | None:
    """Whose rows a report covers: everyone's for an admin, else the key owner's."""
    return None if who.is_admin else who.user_id


def router(services: Services) -> APIRouter:
    router = APIRouter()
    principal = services.principal()
    ledger = services.ledger

    async def admin(who: Principal = Depends(principal)) -> Principal:
        if not who.is_admin:
            raise ApiError(403, "forbidden", "managing API keys needs the admin key")
        return who

    # -- keys ----------------------------------------------------------------------------------

    @router.post("/api/keys", status_code=201, tags=["keys"])
    async def create_key(body: KeyCreate, who: Principal = Depends(admin)) -> dict[str, Any]:
        fields = body.model_dump(exclude={"user_id"})
        new = await ledger.create_key(body.user_id, **fields)
        return {**describe_key(new.record), "key": new.key,
                "note": "the key is shown once; only its digest is stored"}

    @router.get("/api/keys", tags=["keys"])
    async def list_keys(
        user_id: str | None = Query(None, min_length=1, max_length=128), who: Principal = Depends(admin)
    ) -> dict[str, Any]:
        return {"keys": [describe_key(r) for r in await ledger.list_keys(user_id)]}

    async def change(key_id: str, method: str) -> dict[str, Any]:
        if not await getattr(ledger, method)(key_id):
            raise ApiError(404, "not_found", f"no API key {key_id}", field="key_id")
        services.auth.forget(key_id)  # at once here; other replicas within their cache TTL
        record = await ledger.get_key(key_id)
        return describe_key(record) if record is not None else {"key_id": key_id, "deleted": True}

    @router.post("/api/keys/{key_id}/disable", tags=["keys"])
    async def disable_key(key_id: str = KEY_ID, who: Principal = Depends(admin)) -> dict[str, Any]:
        return await change(key_id, "disable_key")

    @router.post("/api/keys/{key_id}/enable", tags=["keys"])
    async def enable_key(key_id: str = KEY_ID, who: Principal = Depends(admin)) -> dict[str, Any]:
        return await change(key_id, "enable_key")

    @router.delete("/api/keys/{key_id}", tags=["keys"])
    async def delete_key(key_id: str = KEY_ID, who: Principal = Depends(admin)) -> dict[str, Any]:
        return await change(key_id, "delete_key")

    # -- reports -------------------------------------------------------------------------------

    @router.get("/api/ai/costs/summary", tags=["finops"])
    async def costs_summary(days: int = DAYS, who: Principal = Depends(principal)) -> Any:
        return _plain(await ledger.summary(_own_scope(who), days))

    @router.get("/api/ai/costs/by-user/{user_id}", tags=["finops"])
    async def costs_by_user(user_id: str = USER_ID, days: int = DAYS, who: Principal = Depends(principal)) -> Any:
        if not who.may_read(user_id):
            raise ApiError(403, "forbidden", "a user key may read only its own costs", field="user_id")
        lines = await ledger.by_user(user_id, days)
        return {"user_id": user_id, "days": days, "users": _plain(lines)}

    @router.get("/api/ai/costs/daily", tags=["finops"])
    async def costs_daily(days: int = DAYS, who: Principal = Depends(principal)) -> Any:
        return {"days": days, "daily": _plain(await ledger.daily(days, _own_scope(who)))}

    @router.get("/api/ai/costs/by-agent", tags=["finops"])
    async def costs_by_agent(days: int = DAYS, who: Principal = Depends(principal)) -> Any:
        return {"days": days, "agents": _plain(await ledger.by_agent(days, _own_scope(who)))}

    @router.get("/api/ai/costs/conversations", tags=["finops"])
    async def costs_conversations(
        days: int = Query(7, ge=1, le=MAX_DAYS), limit: int = Query(10, ge=1, le=MAX_LIMIT),
        who: Principal = Depends(principal),
    ) -> Any:
        rows = await ledger.conversations(days, limit, _own_scope(who))
        return {"days": days, "conversations": _plain(rows)}

    @router.get("/api/ai/metrics/latency", tags=["finops"])
    async def latency(
        model: str | None = Query(None, min_length=1, max_length=200), days: int = DAYS,
        who: Principal = Depends(principal),
    ) -> Any:
        return _plain(await ledger.latency(model, days, _own_scope(who)))

    return router


def install_error_handlers(app: FastAPI) -> None:
    """402 for a budget refusal (naming the budget), 503 when the ledger cannot be reached."""

    @app.exception_handler(BudgetRefusedError)
    async def _budget(_: Request, exc: BudgetRefusedError) -> JSONResponse:
        extra = {"budget": exc.budget, "limit_usd": exc.limit_usd, "spent_usd": exc.spent_usd,
                 "reserved_usd": exc.reserved_usd, "requested_usd": exc.requested_usd}
        extra = {k: v for k, v in extra.items() if v is not None}
        return ApiError(402, "budget_exceeded", str(exc), extra=extra).response()

    @app.exception_handler(LedgerUnavailableError)
    async def _ledger(_: Request, exc: LedgerUnavailableError) -> JSONResponse:
        return ApiError(503, "ledger_unavailable", "the cost ledger is unavailable; nothing was sent "
                        "upstream; retry", headers={"retry-after": "1"}).response()
