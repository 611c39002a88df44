"""Request headers and bodies shared by the simulator tests."""
from __future__ import annotations

BEARER = {"authorization": "Bearer sk-test"}
ANTHROPIC = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI = {"x-goog-api-key": "gm-test"}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]
