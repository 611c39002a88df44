"""The simulator's state and the one request path every protocol shares:
auth → parse → model → context → fault → limits → latency → answer (and the record of it)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from providers.catalog import Catalog, ModelSpec, UnknownModelError
from providers.clock import SYSTEM_CLOCK, Clock
from providers.settings import load_catalog
from providers.simulator.core import Dialect, SimError, SimRequest
from providers.simulator.faults import WILDCARD, FaultRule, FaultTable
from providers.simulator.limiter import Limiter
from providers.simulator.stats import RequestRecord, Stats
from providers.simulator.streaming import Pacing, corrupt, paced_body
from providers.simulator.answers import answer
from providers.simulator.text import Completion

REQUEST_ID_HEADER = "x-switchboard-request-id"


@dataclass
class SimulatorConfig:
    """How the simulator behaves. `latency_scale` multiplies every model's latency (0 = none);
    `fixed_latency_ms` replaces it; rpm/tpm apply per `window_s` seconds."""

    catalog: Catalog = field(default_factory=load_catalog)
    latency_scale: float = 1.0
    fixed_latency_ms: float | None = None
    limits_enabled: bool = True
    window_s: float = 60.0
    faults: tuple[FaultRule, ...] = ()
    seed: int = 0
    log_size: int = 10_000
    clock: Clock = SYSTEM_CLOCK


@dataclass
class _Trace:
    """What gets recorded about one request, filled in as it progresses."""

    platform: str
    request_id: str | None
    model: str = ""
    requested_model: str = ""
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0


class _Hung(Exception):
    """The request was left unanswered (fault `hang`) until the client went away."""


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.catalog = config.catalog
        self.clock = config.clock
        self.stats = Stats(config.log_size)
        self.limiter = Limiter(config.clock, window_s=config.window_s, enabled=config.limits_enabled)
        self.faults = FaultTable(map(self.canonical_rule, config.faults), seed=config.seed)

    def canonical_rule(self, rule: FaultRule) -> FaultRule:
        """The rule keyed by the catalog id, so an alias and the id address the same model."""
        if WILDCARD in rule.key:
            return rule
        spec = self.catalog.resolve_exact(rule.platform, rule.model)
        return rule.model_copy(update={"model": spec.id})

    def reset(self) -> None:
        """Clear counts, the log, faults and limiter state (run-time limit settings included)."""
        self.stats.reset()
        self.faults.clear()
        self.limiter.reset()
        self.limiter.default_window_s = self.config.window_s
        self.limiter.enabled = self.config.limits_enabled

    def lookup(self, platform: str, name: str) -> ModelSpec:
        try:
            spec = self.catalog.resolve_exact(platform, name)
        except UnknownModelError:
            raise SimError("model_not_found", 404, model=name) from None
        if spec.status == "retired":
            raise SimError("model_retired", 404, model=name)
        return spec

    def pacing(self, spec: ModelSpec, fault: FaultRule | None) -> Pacing:
        mult = fault.latency_multiplier if fault else 1.0
        first_byte = fault.slow_first_byte_ms / 1000.0 if fault else 0.0
        cut = fault.cut_after_chunks if fault else None
        malformed = fault.malformed_chunk if fault else False
        if self.config.fixed_latency_ms is not None:
            ttft, per_token = self.config.fixed_latency_ms / 1000.0 * mult, 0.0
        else:
            scale = self.config.latency_scale * mult
            ttft, per_token = spec.ttft_ms / 1000.0 * scale, scale / max(spec.tokens_per_s, 1e-9)
        return Pacing(first_byte, ttft, per_token, cut, malformed)

    # -- the request path ------------------------------------------------------------------

    def auth_error(self, dialect: Dialect, request: Request) -> SimError | None:
        """The vendor's 401 for a missing key, or for a key starting with `invalid` (whose
        message echoes the key, to test that Switchboard never leaks one)."""
        key = dialect.api_key(request)
        if key is None:
            return SimError("auth_missing", 401)
        if key.startswith("invalid"):
            return SimError("auth_invalid", 401, key=key)
        return None

    async def handle_chat(
        self, dialect: Dialect, request: Request, path_model: str | None = None
    ) -> Response:
        trace = _Trace(dialect.platform, request.headers.get(REQUEST_ID_HEADER), path_model or "")
        trace.requested_model = trace.model
        try:
            response = await self._chat(dialect, request, path_model, trace)
        except _Hung:
            return Response(b"", 499)
        except SimError as err:
            response = dialect.error(err)
            if err.limit is not None:
                response.headers.update(dialect.limit_headers(err.limit, self.clock.time()))
            trace.output_tokens = 0
        self._record(trace, response.status_code)
        return response

    async def _chat(
        self, dialect: Dialect, request: Request, path_model: str | None, trace: _Trace
    ) -> Response:
        denied = self.auth_error(dialect, request)
        try:
            req = dialect.parse(await _json_body(request), request, path_model)
        except SimError:
            if denied is not None:
                raise denied from None
            raise
        trace.model = trace.requested_model = req.model
        trace.stream = req.stream
        if denied is not None:  # raised after parsing only so that the log names the model
            raise denied
        spec = self.lookup(dialect.platform, req.model)
        trace.model = spec.id
        done = self.complete(dialect.platform, spec, req)
        trace.input_tokens = done.input_tokens
        if done.input_tokens > spec.context_window:
            raise SimError("context_too_long", 400, model=req.model,
                           context=(spec.context_window, done.input_tokens))
        fault = self.faults.draw(dialect.platform, (spec.id, req.model))
        if fault is not None:
            await self._apply_fault(fault, spec, done, req, request, trace)
        limit = self.limiter.admit(spec, done.total_tokens)
        if limit is not None and limit.refused:
            raise SimError("rate_limited", 429, model=req.model, limit=limit,
                           retry_after_s=limit.retry_after_s)
        headers = dialect.limit_headers(limit, self.clock.time()) if limit else {}
        trace.output_tokens = done.output_tokens
        pacing = self.pacing(spec, fault)
        if req.stream:
            plan = dialect.stream(req, spec, done)
            body = paced_body(plan, pacing, self.clock)
            return StreamingResponse(body, 200, headers, media_type=plan.media_type)
        delay = pacing.first_byte_s + pacing.ttft_s + pacing.per_token_s * done.output_tokens
        if delay > 0:
            await self.clock.sleep(delay)
        response = dialect.response(req, spec, done, headers)
        return _malformed(response) if pacing.malformed else response

    def complete(self, platform: str, spec: ModelSpec, req: SimRequest) -> Completion:
        return answer(
            platform=platform,
            model=spec.id,
            prompt_texts=req.prompt_texts,
            last_user=req.last_user,
            json_mode=req.json_mode,
            max_tokens=req.max_tokens,
            tools=req.tools,
            schema=req.schema,
            images=req.images,
            reasoning=req.reasoning,
        )

    async def _apply_fault(
        self, fault: FaultRule, spec: ModelSpec, done: Completion, req: SimRequest,
        request: Request, trace: _Trace,
    ) -> None:
        if fault.hang:
            self._record(trace, 0)
            await _wait_for_disconnect(request)
            raise _Hung()
        if fault.status is not None:
            raise fault_error(fault, spec, req.model, done.input_tokens)

    def _record(self, trace: _Trace, status: int) -> None:
        self.stats.record(RequestRecord(
            t=self.clock.time(),
            platform=trace.platform,
            model=trace.model,
            status=status,
            stream=trace.stream,
            input_tokens=trace.input_tokens if status < 400 else 0,
            output_tokens=trace.output_tokens if status < 400 else 0,
            request_id=trace.request_id,
            requested_model=trace.requested_model,
        ))


def fault_error(fault: FaultRule, spec: ModelSpec, model: str, input_tokens: int) -> SimError:
    """The vendor-neutral error an injected status stands for."""
    status = fault.status or 500
    retry = fault.retry_after_s
    if status == 400:
        context = (spec.context_window, spec.context_window + input_tokens)
        return SimError("context_too_long", 400, model=model, context=context)
    if status == 401:
        return SimError("auth_missing", 401, model=model)
    if status == 402:
        return SimError("payment_required", 402, model=model)
    if status == 404:
        return SimError("model_not_found", 404, model=model)
    if status == 429:
        kind = "insufficient_quota" if fault.error_code == "insufficient_quota" else "rate_limited"
        return SimError(kind, 429, model=model, retry_after_s=retry)
    if status >= 500:
        return SimError("server_error", status, model=model, retry_after_s=retry)
    return SimError("bad_request", status, f"injected error {status}", model=model, retry_after_s=retry)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError:
        raise SimError("bad_request", 400, "the request body is not valid JSON") from None


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _malformed(response: Response) -> Response:
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Response(corrupt(bytes(response.body)), response.status_code, headers)
