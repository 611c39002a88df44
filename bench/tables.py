"""Markdown tables for the bench reports (bench/report.py, bench/hotpath_report.py)."""
from __future__ import annotations

from typing import Any


def cell(x: Any, nd: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def table(header: list[str], rows: list[list[Any]], nd: int = 1) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c, nd) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(out)


def rows_of(value: Any) -> list[dict]:
    """A phase's result rows: a list, or a dict's "rows" (an error dict has none)."""
    if isinstance(value, dict):
        return value.get("rows") or []
    return value if isinstance(value, list) else []
