"""httpx's client API over aiohttp's connection pool: the provider actors' HTTP transport.

Why: httpcore's pool rescans every pooled connection (and probes idle sockets) each time a
request is added or removed, so its CPU per request grows with concurrency. Measured against
the simulator on this machine (bench/NOTES.md): 3.1 ms of CPU per request at 16 concurrent
calls and 8.7 ms at 64 (capped at ~115 requests/s), against 0.9-1.3 ms through this transport.
Everything above the transport (request building, `httpx.Response`, the error classes that
`providers.transport` maps into the taxonomy) stays httpx, so tests can still swap in
`httpx.ASGITransport`.

aiohttp's errors become the httpx errors with the same meaning: connect timeout, read timeout,
pool timeout, connect failure, and a connection closed or a body cut short by the server
(RemoteProtocolError).
"""
from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import AsyncIterator, Iterator, Mapping

import aiohttp
import httpx

DEFAULT_KEEPALIVE_S = 15.0

#: most specific first: aiohttp's timeout errors are also connection errors
_ERRORS: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (asyncio.TimeoutError, httpx.PoolTimeout),  # `connect`: waiting for a free connection
    (aiohttp.ClientError, httpx.ReadError),
)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A whole (non-streaming) answer: status, headers (case-insensitive) and the body, decoded."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request | None) -> Iterator[None]:
    try:
        yield
    except tuple(cls for cls, _ in _ERRORS) as exc:
        for cls, mapped in _ERRORS:
            if isinstance(exc, cls):
                raise mapped(str(exc) or type(exc).__name__, request=request) from exc
        raise  # unreachable: every caught class is in _ERRORS


class _ResponseBody(httpx.AsyncByteStream):
    """The response body as aiohttp receives it (whatever bytes have arrived: SSE stays live)."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """One aiohttp session (created in the running loop at the first request), at most
    `max_connections` connections, HTTP/1.1 keep-alive, no proxy or netrc from the environment,
    no redirects, bodies passed through undecoded (httpx decodes them)."""

    def __init__(self, max_connections: int = 256, keepalive_s: float = DEFAULT_KEEPALIVE_S) -> None:
        self._max_connections = max_connections
        self._keepalive_s = keepalive_s
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, keepalive_timeout=self._keepalive_s)
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, auto_decompress=False, skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                    timeout: httpx.Timeout) -> Fetched:
        """One request answered whole, straight on aiohttp's pool: no httpx Request or Response
        is built (the one-shot calls of the hot path). Errors are the httpx ones, as below."""
        with _as_httpx_errors(None):
            async with self._get_session().request(
                method, url, headers=headers, data=body, allow_redirects=False, auto_decompress=True,
                timeout=_client_timeout(timeout.as_dict()),
            ) as response:
                content = await response.read()
        return Fetched(response.status, response.headers, content)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _as_httpx_errors(request):
            response = await self._get_session().request(
                request.method,
                str(request.url),
                headers=list(request.headers.multi_items()),
                data=await request.aread() or None,
                allow_redirects=False,
                timeout=_client_timeout(request.extensions.get("timeout", {})),
            )
        extensions = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", "replace")
        return httpx.Response(
            response.status, headers=list(response.raw_headers), stream=_ResponseBody(response, request),
            request=request, extensions=extensions,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _client_timeout(timeout: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
    """httpx's timeout parts on aiohttp: `pool` is the wait for a free connection, `connect`
    the socket's, `read` the wait between bytes."""
    return aiohttp.ClientTimeout(total=None, connect=timeout.get("pool"), sock_connect=timeout.get("connect"),
                                 sock_read=timeout.get("read"))
