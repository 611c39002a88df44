"""`switchboard keys create|list|disable`: user API keys over POST/GET /api/keys (admin key)."""
from __future__ import annotations

import argparse
import sys
from urllib.parse import quote
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from runtime.cli.client import Api, CliError, add_target_arguments, target_from_args

KEY_COLUMNS = ("key_id", "user_id", "agent", "daily_budget_usd", "monthly_budget_usd", "rpm", "disabled", "created_at")


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="create, list and disable user API keys (admin)")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    create = actions.add_parser("create", help="create a key (printed once)")
    create.add_argument("--user", required=True, help="user id the key belongs to")
    create.add_argument("--agent", default=None, help="agent label recorded with each call")
    create.add_argument("--daily-usd", type=_positive_float, default=None, help="daily budget in USD")
    create.add_argument("--monthly-usd", type=_positive_float, default=None, help="monthly budget in USD")
    create.add_argument("--rpm", type=_positive_int, default=None, help="requests per minute")
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    disable = actions.add_parser("disable", help="disable a key by id")
    disable.add_argument("key_id")
    for p in (create, listing, disable):
        add_target_arguments(p)
        p.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    actions: dict[str, Callable[[Api, argparse.Namespace, TextIO], None]] = {
        "create": _create, "list": _list, "disable": _disable,
    }
    with Api(target_from_args(args)) as api:
        actions[args.keys_command](api, args, out)
    return 0


def _create(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = {
        "user_id": args.user,
        "agent": args.agent,
        "daily_budget_usd": args.daily_usd,
        "monthly_budget_usd": args.monthly_usd,
        "rpm": args.rpm,
    }
    created = api.call("POST", "/api/keys", json={k: v for k, v in body.items() if v is not None})
    key = created.get("key")
    if not key:
        raise CliError("the gateway answered without a key")
    record = created.get("record", created)
    print(f"created key {record.get('key_id', '?')} for user {record.get('user_id', args.user)}", file=out)
    print(f"key (shown once, store it now): {key}", file=out)


def _list(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    body = api.call("GET", "/api/keys")
    records = body.get("keys", body.get("data", [])) if isinstance(body, dict) else body
    print(render_table([_row(r) for r in records], KEY_COLUMNS), file=out)


def _disable(api: Api, args: argparse.Namespace, out: TextIO) -> None:
    api.call("POST", f"/api/keys/{quote(args.key_id, safe='')}/disable")
    print(f"disabled {args.key_id}", file=out)


def _row(record: dict[str, Any]) -> dict[str, str]:
    row = {}
    for column in KEY_COLUMNS:
        value = record.get(column)
        if column == "created_at" and isinstance(value, (int, float)):
            value = datetime.fromtimestamp(value, timezone.utc).strftime("%Y-%m-%d %H:%M")
        elif column == "disabled":
            value = "yes" if value else "no"
        row[column] = "-" if value is None else str(value)
    return row


def render_table(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    """A plain left-aligned text table (header, rule, rows)."""
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    if not rows:
        lines.append("(none)")
    return "\n".join(lines)
