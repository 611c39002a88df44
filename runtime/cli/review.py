"""`switchboard review FILE [--language L]`: the collaborative code review (POST /api/ai/review)
on one file; prints the synthesized report and what each step cost."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from runtime.cli.client import Api, CliError, add_target_arguments, target_from_args

LANGUAGES = {
    ".py": "python", ".js": "javascript", ".ts": "typescript", ".tsx": "typescript", ".go": "go",
    ".rs": "rust", ".java": "java", ".kt": "kotlin", ".rb": "ruby", ".php": "php", ".c": "c",
    ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cs": "csharp", ".swift": "swift", ".sql": "sql",
    ".sh": "bash", ".scala": "scala",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="run the code-review pipeline on a file")
    review.add_argument("file", type=Path)
    review.add_argument("--language", default=None, help="language (default: from the file extension)")
    add_target_arguments(review)
    review.set_defaults(run=run)


def read_source(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}", 2) from None
    if not text.strip():
        raise CliError(f"{path} is empty", 2)
    return text


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    code = read_source(args.file)
    body: dict[str, Any] = {"code": code}
    language = args.language or LANGUAGES.get(args.file.suffix.lower())
    if language:
        body["language"] = language
    with Api(target_from_args(args)) as api:
        result = api.call("POST", "/api/ai/review", json=body)
    print(render_review(result, str(args.file)), file=out)
    return 0 if all(step.get("ok", True) for step in result.get("steps", [])) else 1


def render_review(result: dict[str, Any], name: str) -> str:
    lines = [f"Code review of {name}", "=" * (15 + len(name)), "", str(result.get("report", "")).rstrip(), ""]
    steps = result.get("steps", [])
    if steps:
        lines.append("Steps:")
    for step in steps:
        status = "ok" if step.get("ok", True) else f"FAILED: {step.get('error') or 'unknown error'}"
        served = f"{step.get('platform') or '-'}/{step.get('model') or '-'}"
        lines.append(
            f"  {step.get('role', '?'):<12} {served:<40} ${float(step.get('cost_usd') or 0):.6f}  "
            f"{float(step.get('latency_ms') or 0):.0f} ms  {status}"
        )
    total = result.get("total_cost_usd")
    if total is not None:
        lines.append(f"Total cost: ${float(total):.6f}")
    return "\n".join(lines)
