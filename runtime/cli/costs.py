"""`switchboard costs [--days N]`: the FinOps summary and a daily cost bar chart, plain text.

Reads GET /api/ai/costs/summary?days=N and GET /api/ai/costs/daily?days=N. Days without spend are
shown as empty bars so the chart always covers the whole window (UTC days, today last)."""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

from runtime.cli.client import Api, add_target_arguments, target_from_args
from runtime.cli.keys import render_table

MAX_DAYS = 366
BAR_WIDTH = 40
MODEL_COLUMNS = ("platform", "model", "requests", "tokens", "cost_usd", "avg_usd")


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_DAYS}, got {text}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    costs = sub.add_parser("costs", help="cost report: totals, by model, and a daily chart")
    costs.add_argument("--days", type=_days, default=7, help="report window in UTC days (default 7)")
    add_target_arguments(costs)
    costs.set_defaults(run=run)


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    with Api(target_from_args(args)) as api:
        summary = api.call("GET", "/api/ai/costs/summary", params={"days": args.days})
        daily = api.call("GET", "/api/ai/costs/daily", params={"days": args.days})
    print(render_summary(summary, args.days), file=out)
    print(file=out)
    print(render_daily_chart(daily_rows(daily), args.days, today=_utc_today()), file=out)
    return 0


def _utc_today() -> str:
    return datetime.fromtimestamp(time.time(), timezone.utc).strftime("%Y-%m-%d")


def usd(value: float) -> str:
    return f"${value:,.6f}" if value < 1 else f"${value:,.2f}"


def render_summary(summary: dict[str, Any], days: int) -> str:
    total = summary.get("total", {})
    lines = [
        f"Switchboard costs, last {days} day(s)" + (f" for {summary['user_id']}" if summary.get("user_id") else ""),
        f"  requests  {total.get('requests', 0)}  (errors {total.get('errors', 0)}, "
        f"cache hits {total.get('cache_hits', 0)})",
        f"  tokens    {total.get('input_tokens', 0)} in / {total.get('output_tokens', 0)} out",
        f"  spent     {usd(float(total.get('cost_usd', 0.0)))}   saved by cache {usd(float(total.get('saved_usd', 0.0)))}",
        "",
        "By model:",
    ]
    rows = [
        {
            "platform": str(m.get("platform", "-")),
            "model": str(m.get("model", "-")),
            "requests": str(m.get("requests", 0)),
            "tokens": str(m.get("total_tokens", 0)),
            "cost_usd": usd(float(m.get("cost_usd", 0.0))),
            "avg_usd": usd(float(m.get("avg_cost_usd", 0.0))),
        }
        for m in summary.get("by_model", [])
    ]
    lines.append(render_table(rows, MODEL_COLUMNS))
    return "\n".join(lines)


def daily_rows(body: Any) -> list[dict[str, Any]]:
    """The day list, whether the endpoint answers a bare list or wraps it in an object."""
    if isinstance(body, list):
        return body
    for name in ("days", "daily", "data", "rows"):
        if isinstance(body, dict) and isinstance(body.get(name), list):
            return body[name]
    return []


def render_daily_chart(rows: list[dict[str, Any]], days: int, *, today: str) -> str:
    """One bar per UTC day of the window, scaled to the most expensive day."""
    by_date = {str(r.get("date")): r for r in rows}
    last = datetime.strptime(today, "%Y-%m-%d")
    dates = [(last - timedelta(days=i)).strftime("%Y-%m-%d") for i in range(days - 1, -1, -1)]
    costs = [float(by_date.get(d, {}).get("cost_usd", 0.0)) for d in dates]
    peak = max(costs, default=0.0)
    lines = ["Daily cost (UTC):"]
    for date, cost in zip(dates, costs):
        filled = 0 if peak <= 0 else max(1 if cost > 0 else 0, round(BAR_WIDTH * cost / peak))
        requests = int(by_date.get(date, {}).get("requests", 0))
        lines.append(f"  {date} |{'#' * filled}{' ' * (BAR_WIDTH - filled)}| {usd(cost)} ({requests} req)")
    return "\n".join(lines)
