"""Incremental Server-Sent Events decoding over byte chunks (WHATWG "event stream" parsing).

Handles CR, LF and CRLF line ends (a CRLF split across two chunks is one line end), comments
(`: keep-alive`, `: OPENROUTER PROCESSING`), `event:` names, multi-line `data:`, an optional
space after the colon, UTF-8 characters split across chunks, and a leading BOM.

One deliberate difference from the browser algorithm: at end of body `close()` dispatches a last
event that lacks its terminating blank line instead of discarding it (some upstreams end that way).
"""
from __future__ import annotations

import codecs
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from providers.types import FinishReason, StreamCutError, StreamEvent, Usage

_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None  # None when the stream named no type (the browser calls it "message")
    data: str
    id: str | None = None


class SSEDecoder:
    """Feed bytes as they arrive; get complete events back. Not thread-safe; one per stream."""

    def __init__(self) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._started = False
        self._skip_lf = False  # the previous chunk ended in CR: a leading LF belongs to it
        self._partial = ""  # an unterminated line
        self._event: str | None = None
        self._data: list[str] = []
        self._last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        return self._feed_text(self._utf8.decode(chunk))

    def close(self) -> list[SSEEvent]:
        """End of body: flush a split character, a last line and a last undelimited event."""
        events = self._feed_text(self._utf8.decode(b"", final=True))
        if self._partial:
            line, self._partial = self._partial, ""
            self._process_line(line, events)
        self._dispatch(events)
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        if not text:
            return events
        if not self._started:
            self._started = True
            text = text.removeprefix(_BOM)
        if self._skip_lf and text.startswith("\n"):
            text = text[1:]
        self._skip_lf = False
        buffer = self._partial + text
        pos = 0
        for match in _LINE_END.finditer(buffer):
            self._process_line(buffer[pos : match.start()], events)
            pos = match.end()
            if match.group() == "\r" and pos == len(buffer):
                self._skip_lf = True
        self._partial = buffer[pos:]
        return events

    def _process_line(self, line: str, events: list[SSEEvent]) -> None:
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return  # comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._last_id = value
        # `retry` and unknown fields are ignored: reconnection is not ours to do.

    def _dispatch(self, events: list[SSEEvent]) -> None:
        if self._data:
            events.append(SSEEvent(self._event or None, "\n".join(self._data), self._last_id))
        self._event = None
        self._data = []


class SSEStreamDecoder(ABC):
    """Base of the protocol stream decoders: SSE framing in, normalized `StreamEvent`s out.

    Subclasses handle one `SSEEvent` at a time (`_handle`), record usage and finish reason, and
    call `_finish(out)` on their terminal event. Events after the terminal one are ignored.
    `close()` raises `StreamCutError` unless the terminal event was seen (`_at_eof` may accept
    end-of-body as the terminal event, as Gemini does).
    """

    def __init__(self, *, platform: str, model: str) -> None:
        self.platform = platform
        self.model = model
        self._sse = SSEDecoder()
        self._finished = False
        self._usage: Usage | None = None
        self._finish_reason: FinishReason | None = None

    def feed(self, chunk: bytes) -> list[StreamEvent]:
        return self._handle_all(self._sse.feed(chunk))

    def close(self) -> list[StreamEvent]:
        out = self._handle_all(self._sse.close())
        if not self._finished:
            self._at_eof(out)
        if not self._finished:
            raise StreamCutError(
                "stream ended without its terminal event", platform=self.platform, model=self.model
            )
        return out

    def _handle_all(self, events: list[SSEEvent]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        for event in events:
            if self._finished:
                break
            self._handle(event, out)
        return out

    @abstractmethod
    def _handle(self, event: SSEEvent, out: list[StreamEvent]) -> None:
        """Decode one SSE event of the protocol into `out`."""

    def _at_eof(self, out: list[StreamEvent]) -> None:
        """End of body before a terminal event; the default leaves it a cut stream."""

    def _delta(self, text: str, out: list[StreamEvent]) -> None:
        if text:
            out.append(StreamEvent("delta", text=text))

    def _finish(self, out: list[StreamEvent]) -> None:
        out.append(
            StreamEvent(
                "done", usage=self._usage or Usage(), finish_reason=self._finish_reason or "stop"
            )
        )
        self._finished = True
