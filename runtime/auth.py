"""Bearer-token authentication at the edge. The admin key is known only by its digest."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from runtime.errors import ApiError


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    key_id: str | None
    is_admin: bool


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "missing bearer token (Authorization: Bearer <key>)",
            headers={"www-authenticate": "Bearer"},
        )
    return token.strip()


@dataclass(frozen=True, slots=True)
class Authenticator:
    admin_digest: str

    async def authenticate(self, request: Request) -> Principal:
        token = bearer_token(request)
        if hmac.compare_digest(key_digest(token), self.admin_digest):
            return Principal(user_id="admin", key_id="admin", is_admin=True)
        raise ApiError(401, "unauthorized", "invalid API key", headers={"www-authenticate": "Bearer"})
