"""One HTTP attempt against one platform: build the call, send it, map the outcome.

A whole answer is fetched straight on aiohttp's pool when the client runs on it (the hot path:
no httpx Request or Response per call), otherwise through httpx (tests' ASGI and mock
transports); streams always go through httpx. Transport errors (connect, timeouts, cut streams)
are mapped here; HTTP error bodies are mapped by the platform's wire adapter. Nothing here
retries: the caller owns the one retry loop.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import AsyncIterator, Awaitable, Callable, Mapping

import httpx

from providers.aiohttp_transport import AiohttpTransport, Fetched
from providers.types import (
    ChatRequest,
    ChatResponse,
    ProviderError,
    ServerError,
    StreamCutError,
    StreamEvent,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from providers.wire.base import Endpoint, HttpCall, WireAdapter
from providers.wire import adapter_for

REQUEST_ID_HEADER = "x-switchboard-request-id"

#: (method, url, headers, body, timeout) -> the whole answer; raises httpx errors
Fetch = Callable[[str, str, Mapping[str, str], bytes, httpx.Timeout], Awaitable[Fetched]]


class UpstreamClient(httpx.AsyncClient):
    """An httpx client over aiohttp's pool that also lends that pool for whole answers."""

    def __init__(self, pool: AiohttpTransport) -> None:
        super().__init__(transport=pool, trust_env=False, follow_redirects=False)
        self.pool = pool


def new_http_client(max_connections: int = 256) -> UpstreamClient:
    """A platform's shared client: httpx's API over aiohttp's pool (providers/aiohttp_transport.py:
    httpcore's own pool costs more CPU per request the more requests are in flight).
    trust_env=False: no proxy or netrc from the environment."""
    return UpstreamClient(AiohttpTransport(max_connections=max_connections))


def fetcher_for(client: httpx.AsyncClient) -> Fetch:
    """aiohttp's pool itself when the client runs on it; else a fetch through httpx."""
    if isinstance(client, UpstreamClient):
        return client.pool.fetch

    async def through_httpx(method: str, url: str, headers: Mapping[str, str], body: bytes,
                            timeout: httpx.Timeout) -> Fetched:
        resp = await client.request(method, url, headers=headers, content=body, timeout=timeout)
        return Fetched(resp.status_code, resp.headers, resp.content)

    return through_httpx


def encode_json(data: object) -> bytes:
    """As httpx encodes a `json=` body."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def map_transport_error(exc: Exception, *, platform: str, model: str, phase: str) -> ProviderError:
    """httpx exceptions → taxonomy. `phase` says what we were waiting for."""
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeoutError("connect timeout", platform=platform, model=model)
    if isinstance(exc, httpx.PoolTimeout):  # no connection came free: nothing was sent
        return UpstreamTimeoutError("timeout waiting for a connection", platform=platform, model=model)
    if isinstance(exc, httpx.TimeoutException):  # sent (or being sent): the vendor may run it
        return UpstreamTimeoutError(f"timeout waiting for {phase}", platform=platform, model=model, unanswered=1)
    if isinstance(exc, httpx.ReadError):  # lost while waiting for the answer
        return UpstreamConnectionError("connection lost", platform=platform, model=model, unanswered=1)
    if isinstance(exc, (httpx.ConnectError, httpx.NetworkError)):
        return UpstreamConnectionError("connection failed", platform=platform, model=model)
    if isinstance(exc, httpx.RemoteProtocolError):
        if phase == "next chunk":
            return StreamCutError("stream cut by upstream", platform=platform, model=model)
        return UpstreamConnectionError("upstream closed the connection", platform=platform, model=model,
                                       unanswered=1)
    return ServerError(f"transport error: {type(exc).__name__}", platform=platform, model=model)


class Transport:
    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        self.adapter: WireAdapter = adapter_for(endpoint.protocol)
        self._client = client
        self._fetch = fetcher_for(client)

    def _timeout(self, budget_s: float) -> httpx.Timeout:
        total = max(0.001, min(self.endpoint.timeout_s, budget_s))
        return httpx.Timeout(total, connect=min(self.endpoint.connect_timeout_s, total))

    def _call(self, request: ChatRequest, model_id: str, stream: bool) -> tuple[HttpCall, dict[str, str]]:
        try:
            call = self.adapter.build_call(request, model_id, self.endpoint, stream=stream)
        except ProviderError as err:  # a request this protocol cannot express: name who refused
            err.platform, err.model = err.platform or self.endpoint.platform, err.model or model_id
            raise
        return call, {**call.headers, REQUEST_ID_HEADER: request.request_id}

    def _request(self, request: ChatRequest, model_id: str, stream: bool, budget_s: float) -> httpx.Request:
        call, headers = self._call(request, model_id, stream)
        return self._client.build_request(
            call.method, call.url, headers=headers, json=call.json, timeout=self._timeout(budget_s)
        )

    async def complete(
        self, request: ChatRequest, model_id: str, budget_s: float
    ) -> tuple[ChatResponse, Mapping[str, str]]:
        """One non-streaming attempt: the response and the upstream's headers (case-insensitive;
        rate-limit headers tighten the local limits). Raises a ProviderError on any failure."""
        platform = self.endpoint.platform
        started = time.perf_counter()
        call, headers = self._call(request, model_id, False)
        try:
            resp = await self._fetch(call.method, call.url, headers, encode_json(call.json), self._timeout(budget_s))
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, platform=platform, model=model_id, phase="response") from None
        if resp.status >= 400:
            raise self.adapter.parse_error(resp.status, resp.headers, resp.body, platform=platform, model=model_id)
        try:
            body = json.loads(resp.body)
        except ValueError:
            raise ServerError("upstream sent invalid JSON", platform=platform, model=model_id) from None
        parsed = self.adapter.parse_response(body, platform=platform, model=model_id)
        latency_ms = (time.perf_counter() - started) * 1000.0
        return replace(parsed, latency_ms=latency_ms), resp.headers

    async def stream(
        self, request: ChatRequest, model_id: str, budget_s: float, idle_timeout_s: float
    ) -> AsyncIterator[StreamEvent]:
        """One streaming attempt, yielding normalized events. Raises ProviderError."""
        platform = self.endpoint.platform
        decoder = self.adapter.stream_decoder(platform=platform, model=model_id)
        http_request = self._request(request, model_id, True, budget_s)
        http_request.extensions["timeout"] = httpx.Timeout(
            self._timeout(budget_s).connect, read=idle_timeout_s, write=10.0, pool=10.0
        ).as_dict()
        try:
            resp = await self._client.send(http_request, stream=True)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, platform=platform, model=model_id, phase="first byte") from None
        try:
            if resp.status_code >= 400:
                body = await resp.aread()
                raise self.adapter.parse_error(
                    resp.status_code, resp.headers, body, platform=platform, model=model_id
                )
            async for chunk in _chunks(resp, platform, model_id):
                for event in decoder.feed(chunk):
                    yield event
            for event in decoder.close():
                yield event
        finally:
            await resp.aclose()


async def _chunks(resp: httpx.Response, platform: str, model: str) -> AsyncIterator[bytes]:
    iterator = resp.aiter_raw().__aiter__()
    while True:
        try:
            chunk = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, platform=platform, model=model, phase="next chunk") from None
        yield chunk

