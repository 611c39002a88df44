"""One HTTP attempt against one platform: build the call, send it with httpx, map the outcome.

Transport errors (connect, timeouts, cut streams) are mapped here; HTTP error bodies are mapped by
the platform's wire adapter. Nothing here retries: the ProviderActor owns the one retry loop.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import AsyncIterator

import httpx

from providers.aiohttp_transport import AiohttpTransport
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
from providers.wire.base import Endpoint, WireAdapter
from providers.wire import adapter_for

REQUEST_ID_HEADER = "x-switchboard-request-id"


def new_http_client(max_connections: int = 256) -> httpx.AsyncClient:
    """The actor's shared client: httpx's API over aiohttp's pool (providers/aiohttp_transport.py:
    httpcore's own pool costs more CPU per request the more requests are in flight).
    trust_env=False: no proxy or netrc from the environment."""
    return httpx.AsyncClient(
        transport=AiohttpTransport(max_connections=max_connections),
        trust_env=False,
        follow_redirects=False,
    )


def map_transport_error(exc: Exception, *, platform: str, model: str, phase: str) -> ProviderError:
    """httpx exceptions → taxonomy. `phase` says what we were waiting for."""
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeoutError("connect timeout", platform=platform, model=model)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeoutError(f"timeout waiting for {phase}", platform=platform, model=model)
    if isinstance(exc, (httpx.ConnectError, httpx.NetworkError)):
        return UpstreamConnectionError("connection failed", platform=platform, model=model)
    if isinstance(exc, httpx.RemoteProtocolError):
        if phase == "next chunk":
            return StreamCutError("stream cut by upstream", platform=platform, model=model)
        return UpstreamConnectionError("upstream closed the connection", platform=platform, model=model)
    return ServerError(f"transport error: {type(exc).__name__}", platform=platform, model=model)


class Transport:
    def __init__(self, endpoint: Endpoint, client: httpx.AsyncClient) -> None:
        self.endpoint = endpoint
        self.adapter: WireAdapter = adapter_for(endpoint.protocol)
        self._client = client

    def _timeout(self, budget_s: float) -> httpx.Timeout:
        total = max(0.001, min(self.endpoint.timeout_s, budget_s))
        return httpx.Timeout(total, connect=min(self.endpoint.connect_timeout_s, total))

    def _request(self, request: ChatRequest, model_id: str, stream: bool, budget_s: float):
        try:
            call = self.adapter.build_call(request, model_id, self.endpoint, stream=stream)
        except ProviderError as err:  # a request this protocol cannot express: name who refused
            err.platform, err.model = err.platform or self.endpoint.platform, err.model or model_id
            raise
        headers = {**call.headers, REQUEST_ID_HEADER: request.request_id}
        return self._client.build_request(
            call.method, call.url, headers=headers, json=call.json, timeout=self._timeout(budget_s)
        )

    async def complete(
        self, request: ChatRequest, model_id: str, budget_s: float
    ) -> tuple[ChatResponse, httpx.Headers]:
        """One non-streaming attempt: the response and the upstream's headers (rate-limit
        headers tighten the local limits). Raises a ProviderError on any failure."""
        platform = self.endpoint.platform
        started = time.perf_counter()
        try:
            http_request = self._request(request, model_id, False, budget_s)
            resp = await self._client.send(http_request)
        except httpx.HTTPError as exc:
            raise map_transport_error(exc, platform=platform, model=model_id, phase="response") from None
        if resp.status_code >= 400:
            raise self.adapter.parse_error(
                resp.status_code, resp.headers, resp.content, platform=platform, model=model_id
            )
        try:
            body = resp.json()
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

