"""`switchboard bulk FILE --chain C | --use-case U --priority P [--concurrency N] -o OUT.jsonl`.

Each non-blank input line is `{"id"?, "prompt"}` or `{"id"?, "messages"}`; each goes through
POST /v1/chat/completions with model `switchboard/<chain>` or `switchboard/<use_case>-<priority>`,
at most N at a time. Every input gets exactly one output line, in input order:
`{"id", "text", "platform", "model", "cost_usd"}` or `{"id", "error", ...}`. A plain-text progress
bar goes to stderr. Exit code 1 when any input failed."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

from runtime.cli.client import (
    CliError, Target, add_target_arguments, error_message, target_from_args,
)

BAR_WIDTH = 30
USE_CASES = ("chat", "code", "reasoning", "analysis", "bulk")
PRIORITIES = ("speed", "cost", "quality", "balanced")


@dataclass(frozen=True)
class Item:
    """One input line: its id, and the request body to send (or why it cannot be sent)."""

    id: Any
    messages: list[dict[str, Any]] | None = None
    error: str | None = None


def add_parser(sub: argparse._SubParsersAction) -> None:
    bulk = sub.add_parser("bulk", help="run a JSONL file of prompts through a chain")
    bulk.add_argument("file", type=Path, help="JSONL input: {\"id\"?, \"prompt\"} or {\"id\"?, \"messages\"}")
    route = bulk.add_mutually_exclusive_group(required=True)
    route.add_argument("--chain", help="chain name, e.g. bulk")
    route.add_argument("--use-case", choices=USE_CASES)
    bulk.add_argument("--priority", choices=PRIORITIES, help="with --use-case")
    bulk.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    bulk.add_argument("--max-tokens", type=int, default=None, help="max_tokens per request")
    bulk.add_argument("-o", "--output", type=Path, required=True, help="output JSONL")
    add_target_arguments(bulk)
    bulk.set_defaults(run=run)


def model_name(args: argparse.Namespace) -> str:
    if args.chain:
        if args.priority:
            raise CliError("--priority goes with --use-case, not --chain", 2)
        return f"switchboard/{args.chain}"
    if not args.priority:
        raise CliError("--use-case needs --priority", 2)
    return f"switchboard/{args.use_case}-{args.priority}"


def parse_line(text: str, line_no: int) -> Item:
    """An input line → Item; a bad line becomes an Item carrying its error (still one output)."""
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return Item(id=line_no, error=f"line {line_no}: invalid JSON: {exc}")
    if not isinstance(obj, dict):
        return Item(id=line_no, error=f"line {line_no}: expected a JSON object")
    item_id = obj.get("id", line_no)
    if isinstance(obj.get("prompt"), str) and obj["prompt"].strip():
        return Item(item_id, [{"role": "user", "content": obj["prompt"]}])
    messages = obj.get("messages")
    if isinstance(messages, list) and messages and all(isinstance(m, dict) for m in messages):
        return Item(item_id, messages)
    return Item(item_id, error=f"line {line_no}: needs a non-empty \"prompt\" or \"messages\" list")


def read_items(path: Path) -> list[Item]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", 2) from None
    return [parse_line(text, n) for n, text in enumerate(lines, 1) if text.strip()]


def progress_bar(done: int, total: int, width: int = BAR_WIDTH) -> str:
    filled = width if total == 0 else width * done // total
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


async def send(client: httpx.AsyncClient, item: Item, model: str, max_tokens: int | None) -> dict[str, Any]:
    """One request → one result line (never raises for a per-item failure)."""
    if item.error:
        return {"id": item.id, "error": item.error}
    body: dict[str, Any] = {"model": model, "messages": item.messages}
    if max_tokens:
        body["max_tokens"] = max_tokens
    try:
        response = await client.post("/v1/chat/completions", json=body)
    except httpx.HTTPError as exc:
        return {"id": item.id, "error": f"{type(exc).__name__}: {exc}"}
    h = response.headers
    served = {"platform": h.get("x-switchboard-platform"), "model": h.get("x-switchboard-model")}
    if response.status_code >= 400:
        return {"id": item.id, "error": error_message(response), **served, "cost_usd": 0.0}
    try:
        text = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return {"id": item.id, "error": "malformed completion body", **served}
    return {"id": item.id, "text": text, **served, "cost_usd": float(h.get("x-switchboard-cost-usd") or 0.0)}


async def run_items(
    items: list[Item], target: Target, model: str, concurrency: int, max_tokens: int | None,
    out: TextIO, progress: TextIO,
) -> int:
    """Send every item (≤ concurrency in flight), write results in input order; returns failures."""
    results: dict[int, dict[str, Any]] = {}
    written = completed = failures = 0
    gate = asyncio.Semaphore(concurrency)
    progress.write(progress_bar(0, len(items)))
    async with httpx.AsyncClient(base_url=target.url, headers=target.headers(), timeout=target.timeout_s,
                                 trust_env=False) as client:

        async def one(index: int, item: Item) -> None:
            nonlocal written, completed, failures
            async with gate:
                result = await send(client, item, model, max_tokens)
            results[index] = result
            completed += 1
            failures += "error" in result
            while written in results:  # flush the finished prefix, keeping input order
                out.write(json.dumps(results.pop(written), ensure_ascii=False) + "\n")
                written += 1
            progress.write(progress_bar(completed, len(items)))
            progress.flush()

        await asyncio.gather(*(one(i, item) for i, item in enumerate(items)))
    progress.write("\n")
    return failures


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    model = model_name(args)
    if args.concurrency < 1:
        raise CliError("--concurrency must be >= 1", 2)
    target = target_from_args(args)
    items = read_items(args.file)
    with args.output.open("w", encoding="utf-8") as sink:
        failures = asyncio.run(
            run_items(items, target, model, args.concurrency, args.max_tokens, sink, sys.stderr)
        )
    print(f"{len(items) - failures}/{len(items)} ok, {failures} failed -> {args.output}", file=sys.stderr)
    return 1 if failures else 0
