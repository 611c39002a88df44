"""Structured JSON logs (structlog) with a redaction processor.

Provider keys must never reach a log line: header values (`Authorization`, `x-api-key`,
`x-goog-api-key`), anything shaped like a vendor key (`sk-…`, `sk-ant-…`, `gsk_…`, `AIza…`), and
every key value the operator configured are replaced by `[REDACTED]`, recursively, in every event.
Request ids are bound with `structlog.contextvars` and passed explicitly across actor hops.
"""
from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, Iterable, Mapping

import structlog

REDACTED = "[REDACTED]"
SENSITIVE_KEYS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api_key", "api-key", "proxy-authorization"})
KEY_PATTERN = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_\-]{20,}|Bearer\s+[A-Za-z0-9._\-]{8,})"
)
KEY_ENV_SUFFIX = "_API_KEY"


def configured_secrets(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every provider key value in the environment (long enough to be worth matching)."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if (k.endswith(KEY_ENV_SUFFIX) or k == "SWITCHBOARD_ADMIN_KEY") and len(v) >= 6}
    return tuple(sorted(values, key=len, reverse=True))


class Redactor:
    """A structlog processor (and a plain function for error messages)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return KEY_PATTERN.sub(REDACTED, value)

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and key.lower() in SENSITIVE_KEYS:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {k: self.value(v, k) for k, v in event_dict.items()}


def configure_logging(level: str = "INFO", stream=None, secrets: Iterable[str] | None = None) -> Redactor:
    """JSON lines on stderr (or `stream`), redacted. Idempotent."""
    redactor = Redactor(configured_secrets() if secrets is None else secrets)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redactor,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stderr),  # not print(): Serve replaces it
        cache_logger_on_first_use=False,
    )
    return redactor


def get_logger(name: str = "switchboard") -> Any:
    return structlog.get_logger(name)
