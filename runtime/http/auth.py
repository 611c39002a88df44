"""Bearer-token authentication at the edge: the admin key (known only by its digest) and user
API keys (looked up through the ledger by digest, cached in the replica).

A user key's record is cached for `ttl_s` (default 5 s, injected clock), unknown keys too, so a
replica asks the ledger at most once per key per TTL: disabling or deleting a key takes effect
everywhere within `ttl_s` (at once on the replica that did it, see `forget`). The cache is keyed
by the key's digest, never by the key, and bounded (least recently used out). Unknown and
disabled keys get 401; a ledger that cannot be reached gets 503 (never a guess).
"""
from __future__ import annotations

import hmac
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request

from providers.clock import SYSTEM_CLOCK, Clock
from runtime.finops.budget import Budget
from runtime.finops.errors import LedgerUnavailableError
from runtime.http.errors import ApiError
from runtime.finops.keys import KEY_PREFIX, KeyRecord, key_digest

__all__ = ["Authenticator", "Principal", "bearer_token", "key_digest"]

ADMIN_USER = "admin"


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    key_id: str | None
    is_admin: bool
    agent: str | None = None
    budgets: tuple[Budget, ...] = ()
    rpm: int | None = None

    @classmethod
    def of_key(cls, record: KeyRecord) -> "Principal":
        return cls(record.user_id, record.key_id, False, record.agent, record.budgets(), record.rpm)

    def may_read(self, user_id: str) -> bool:
        """Admins read everyone's costs; a user key only its owner's."""
        return self.is_admin or self.user_id == user_id


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "missing bearer token (Authorization: Bearer <key>)",
            headers={"www-authenticate": "Bearer"},
        )
    return token.strip()


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"www-authenticate": "Bearer"})


class KeyLookup(Protocol):
    async def lookup_by_key(self, key: str) -> KeyRecord | None: ...


@dataclass
class Authenticator:
    admin_digest: str
    ledger: KeyLookup | None = None
    clock: Clock = SYSTEM_CLOCK
    ttl_s: float = 5.0
    max_entries: int = 10_000
    _cache: OrderedDict[str, tuple[float, KeyRecord | None]] = field(default_factory=OrderedDict, repr=False)

    async def authenticate(self, request: Request) -> Principal:
        return await self.principal_for(bearer_token(request))

    async def principal_for(self, token: str) -> Principal:
        digest = key_digest(token)
        if hmac.compare_digest(digest, self.admin_digest):
            return Principal(user_id=ADMIN_USER, key_id=ADMIN_USER, is_admin=True)
        if self.ledger is None or not token.startswith(KEY_PREFIX):
            raise _unauthorized("invalid API key")
        record = await self._record(token, digest)
        if record is None:
            raise _unauthorized("invalid API key")
        if record.disabled:
            raise _unauthorized(f"API key {record.key_id} is disabled")
        return Principal.of_key(record)

    async def _record(self, token: str, digest: str) -> KeyRecord | None:
        now = self.clock.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.ttl_s:
            self._cache.move_to_end(digest)
            return cached[1]
        try:
            record = await self.ledger.lookup_by_key(token)  # type: ignore[union-attr]
        except LedgerUnavailableError:
            raise ApiError(503, "ledger_unavailable", "cannot check the API key right now; retry",
                           headers={"retry-after": "1"}) from None
        self._cache[digest] = (now, record)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return record

    def forget(self, key_id: str) -> None:
        """Drop a key's cached record (after disabling, enabling or deleting it here)."""
        stale = [d for d, (_, rec) in self._cache.items() if rec is not None and rec.key_id == key_id]
        for digest in stale:
            del self._cache[digest]
