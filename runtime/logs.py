"""Structured JSON logs (structlog) with a redaction processor.

Provider keys must never reach a log line: header values (`Authorization`, `x-api-key`,
`x-goog-api-key`), anything shaped like a vendor key (`sk-…`, `sk-ant-…`, `gsk_…`, `AIza…`), and
every key value the operator configured are replaced by `[REDACTED]`, recursively, in every event.
Request ids are bound with `structlog.contextvars` and passed explicitly across actor hops.

A replica writes its lines through a `LineBuffer` (`configure_logging(buffered=True)`): INFO lines
(one per request) wait in memory and go out together every `every_s` or `max_bytes`, one write
instead of one write+flush per request; a WARNING or worse writes everything held at once, so a
failing process's last words are never held back.
"""
from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
from collections import abc
from typing import Any, Callable, Iterable, Mapping, TextIO

import structlog

REDACTED = "[REDACTED]"
SENSITIVE_KEYS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api_key", "api-key", "proxy-authorization"})
KEY_PATTERN = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9_\-]{8,}|gsk_[A-Za-z0-9]{8,}|AIza[0-9A-Za-z_\-]{20,}|Bearer\s+[A-Za-z0-9._\-]{8,})"
)
KEY_ENV_SUFFIX = "_API_KEY"
#: values that cannot hold a key, passed through without a look (most of a request's log line)
_PLAIN = frozenset({int, float, bool, type(None)})


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
        cls = type(value)
        if cls is str:
            return self.text(value)
        if cls in _PLAIN:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, abc.Mapping):  # not typing.Mapping: its isinstance is ~10x slower
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.value(v) for v in value)
        return value

    def __call__(self, _logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        if self._plainly_clean(event_dict):
            return event_dict
        return {k: self.value(v, k) for k, v in event_dict.items()}

    def _plainly_clean(self, event_dict: dict[str, Any]) -> bool:
        """True when the event is flat (strings and numbers), has no sensitive field name, and
        neither a configured secret nor a key-shaped string occurs in its strings: one search
        over them all, joined by NUL (no secret holds one and the key pattern never matches
        one, so no match spans two values). Anything else takes the full walk."""
        strings = []
        for name, value in event_dict.items():
            if name.lower() in SENSITIVE_KEYS:
                return False
            cls = type(value)
            if cls is str:
                strings.append(value)
            elif cls not in _PLAIN:
                return False
        text = "\x00".join(strings)
        return KEY_PATTERN.search(text) is None and not any(secret in text for secret in self.secrets)


class LineBuffer:
    """Rendered lines held until `flush()` (or until they pass `max_bytes`), then written in one
    write and one flush, in the order they came, from any thread."""

    def __init__(self, stream: TextIO, max_bytes: int = 64 * 1024) -> None:
        self.stream = stream
        self.max_bytes = max_bytes
        self._lines: list[str] = []
        self._size = 0
        self._lock = threading.Lock()

    def add(self, line: str, urgent: bool = False) -> None:
        with self._lock:
            self._lines.append(line)
            self._size += len(line)
            if urgent or self._size >= self.max_bytes:
                self._write()

    def flush(self) -> None:
        with self._lock:
            self._write()

    def _write(self) -> None:
        if self._lines:
            text, self._lines, self._size = "".join(self._lines), [], 0
            self.stream.write(text)
            self.stream.flush()


class BufferedLogger:
    """structlog's logger over a LineBuffer: debug/info wait, warning and worse go out at once."""

    def __init__(self, buffer: LineBuffer) -> None:
        self.buffer = buffer

    def msg(self, message: str) -> None:
        self.buffer.add(message + "\n")

    def urgent(self, message: str) -> None:
        self.buffer.add(message + "\n", urgent=True)

    debug = info = msg
    warning = warn = error = err = critical = fatal = exception = failure = urgent


def flush_every(buffer: LineBuffer, every_s: float, wait: Callable[[float], bool]) -> threading.Thread:
    """A daemon thread that flushes `buffer` each time `wait(every_s)` returns False (True: stop)."""
    def run() -> None:
        while not wait(every_s):
            buffer.flush()
        buffer.flush()

    thread = threading.Thread(target=run, name="switchboard-log-flush", daemon=True)
    thread.start()
    return thread


_buffered: LineBuffer | None = None


def _line_buffer(stream: TextIO, every_s: float) -> LineBuffer:
    """The process's one buffer (and its flusher); configuring again keeps it."""
    global _buffered
    if _buffered is None or _buffered.stream is not stream:
        if _buffered is not None:
            _buffered.flush()
        _buffered = LineBuffer(stream)
        flush_every(_buffered, every_s, threading.Event().wait)
        atexit.register(_buffered.flush)
    return _buffered


def flush_logs() -> None:
    """Write what the process's buffer holds (a replica calls this when it stops)."""
    if _buffered is not None:
        _buffered.flush()


def configure_logging(level: str = "INFO", stream=None, secrets: Iterable[str] | None = None,
                      buffered: bool = False, every_s: float = 0.2) -> Redactor:
    """JSON lines on stderr (or `stream`), redacted; `buffered`: INFO lines written together
    every `every_s` (see the module docstring). Idempotent."""
    redactor = Redactor(configured_secrets() if secrets is None else secrets)
    out = stream or sys.stderr
    if buffered:
        shared = BufferedLogger(_line_buffer(out, every_s))
        factory: Callable[..., Any] = lambda *_args: shared  # noqa: E731
    else:
        factory = structlog.WriteLoggerFactory(out)  # not print(): Serve replaces it
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
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
    return redactor


def get_logger(name: str = "switchboard") -> Any:
    return structlog.get_logger(name)
