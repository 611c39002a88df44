"""Request headers and bodies shared by the simulator tests."""
from __future__ import annotations

BEARER = {"authorization": "Bearer sk-test"}
ANTHROPIC = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "gm-test"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def sse_events(body: str, sep: str = "\n\n") -> list[dict[str, str]]:
    """Split an SSE body into events: {"event": ..., "data": ..., "comment": ...} per block."""
    events = []
    for block in body.split(sep):
        if not block.strip():
            continue
        event: dict[str, str] = {}
        for line in block.splitlines():
            field, _, value = line.partition(":")
            event[field or "comment"] = value.removeprefix(" ")
        events.append(event)
    return events
