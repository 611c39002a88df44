"""An instant OpenAI-compatible upstream for the hot-path bench: one asyncio protocol that
answers every `POST .../chat/completions` at once with the same small completion (keep-alive,
HTTP/1.1, no parsing beyond what framing needs), so what is measured is the gateway, not the
upstream. It notes when each completion arrived (`GET /_arrivals`, monotonic seconds, the same
clock as every process on this host; `POST /_arrivals/reset`). Loopback only.

    python -m bench.instant_upstream --port 9300
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

BODY = json.dumps({
    "id": "chatcmpl-instant", "object": "chat.completion", "created": 1767225600, "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there, how are you?"},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 13, "completion_tokens": 7, "total_tokens": 20},
}).encode()
RESPONSE = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
ARRIVALS: list[float] = []


def _json(value: object) -> bytes:
    body = json.dumps(value).encode()
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class Instant(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0].strip())
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            first_line = head.split(b"\r\n", 1)[0]
            self.buffer = self.buffer[end:]
            self.transport.write(answer(first_line))  # type: ignore[attr-defined]


def answer(first_line: bytes) -> bytes:
    if first_line.startswith(b"post ") and b"/chat/completions" in first_line:
        ARRIVALS.append(time.monotonic())
        return RESPONSE
    if first_line.startswith(b"get /_arrivals "):
        return _json({"arrivals": ARRIVALS})
    if first_line.startswith(b"post /_arrivals/reset "):
        ARRIVALS.clear()
        return _json({"ok": True})
    return NOT_FOUND


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Instant, "127.0.0.1", port, backlog=1024)
    print(f"INSTANT READY http://127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instant_upstream")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
