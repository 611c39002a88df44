"""How the CLI reaches a running gateway: the URL and bearer key (flags, environment, admin key
file) and an httpx client that turns API errors into one readable line."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import httpx

from runtime.finops.admin_key import ADMIN_KEY_FILE

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 120.0


class CliError(Exception):
    """A failure to report on stderr (no traceback) with an exit code."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    url: str
    key: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"} if self.key else {}


def resolve_key(flag: str | None, env: Mapping[str, str]) -> str | None:
    """--key, else SWITCHBOARD_API_KEY, else the admin key file under SWITCHBOARD_DATA_DIR (./var)."""
    if flag:
        return flag
    if env.get("SWITCHBOARD_API_KEY"):
        return env["SWITCHBOARD_API_KEY"]
    path = Path(env.get("SWITCHBOARD_DATA_DIR", "var")) / ADMIN_KEY_FILE
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=None,
                        help=f"gateway base URL (default: $SWITCHBOARD_URL or {DEFAULT_URL})")
    parser.add_argument("--key", default=None,
                        help="bearer key (default: $SWITCHBOARD_API_KEY, else $SWITCHBOARD_DATA_DIR/admin.key)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per HTTP request")


def target_from_args(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> Target:
    env = os.environ if env is None else env
    url = (args.url or env.get("SWITCHBOARD_URL") or DEFAULT_URL).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"--url must start with http:// or https://, got {url!r}", 2)
    if args.timeout <= 0:
        raise CliError("--timeout must be > 0", 2)
    return Target(url, resolve_key(args.key, env), args.timeout)


def error_message(response: httpx.Response) -> str:
    """`HTTP 404 not_found: ... (field: x)` from the gateway's `{error: {...}}` body, or the raw text."""
    try:
        err = response.json().get("error")
    except ValueError:
        err = None
    if isinstance(err, dict):
        text = f"HTTP {response.status_code} {err.get('type', 'error')}: {err.get('message', '')}"
        return text + (f" (field: {err['field']})" if err.get("field") else "")
    return f"HTTP {response.status_code}: {response.text[:300]}"


class Api:
    """A small synchronous client for the admin/report endpoints."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._http = httpx.Client(base_url=target.url, headers=target.headers(),
                                  timeout=target.timeout_s, trust_env=False)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.target.url}: {exc}") from None
        if response.status_code == 404 and _route_missing(response):
            raise CliError(f"{method} {path}: this gateway has no such endpoint (HTTP 404)")
        if response.status_code >= 400:
            raise CliError(f"{method} {path}: {error_message(response)}")
        return response.json()


def _route_missing(response: httpx.Response) -> bool:
    """FastAPI's own 404 for an unknown path (as opposed to an API 'not found' about a resource)."""
    try:
        body = response.json()
    except ValueError:
        return True
    return body == {"detail": "Not Found"} or (
        isinstance(body.get("error"), dict) and body["error"].get("message") == "Not Found"
    )
