"""Ensemble synthesis: ask several models in parallel, then synthesize their answers.

Members share one deadline and run concurrently, so wall time ≈ slowest member + synthesis.
Failures are reported per member; the synthesis runs over the successful answers only, and when
none succeeded there is no synthesis call at all (EnsembleFailed). Cost = members + synthesis.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace

from providers.catalog import UnknownModelError
from providers.types import ChatRequest, Message
from runtime.config import Config
from runtime.core.gateway import CallContext, Gateway
from runtime.core.router import AllProvidersFailed, ClientRequestError, RoutedResponse
from runtime.core.routing import RoutePlan, Step, UnknownRouteError, plan_for_use_case

SYNTHESIS_SYSTEM = (
    "You are the synthesis step of an ensemble. Several models answered the same question. "
    "Combine their answers into one accurate, complete reply. Where they disagree, say so and "
    "prefer the best-supported answer. Do not mention the models by name unless it matters."
)


@dataclass(frozen=True, slots=True)
class MemberResult:
    platform: str
    model: str
    ok: bool
    text: str | None
    error: str | None
    cost_usd: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class EnsembleResult:
    answer: str
    members: tuple[MemberResult, ...]
    synthesis: RoutedResponse
    total_cost_usd: float
    latency_ms: float


class EnsembleFailed(Exception):
    def __init__(self, members: tuple[MemberResult, ...]) -> None:
        super().__init__("no ensemble member answered; nothing to synthesize")
        self.members = members


def member_plans(config: Config, names: list[str]) -> list[RoutePlan]:
    """A one-step plan per member: a platform (its default_model) or a catalog model."""
    catalog = config.catalog()
    plans = []
    for name in names:
        provider = config.providers.get(name)
        try:
            if provider is not None:
                if provider.default_model is None:
                    raise UnknownRouteError(f"platform {name!r} has no default_model for ensembles")
                spec = catalog.resolve(provider.default_model, name)
            else:
                spec = catalog.resolve(name)
        except UnknownModelError:
            raise UnknownRouteError(f"ensemble member {name!r} is neither a platform nor a model") from None
        plans.append(RoutePlan(f"ensemble:{spec.platform}/{spec.id}", (Step(spec.platform, spec),)))
    return plans


def synthesis_messages(query: str, answers: list[MemberResult], missing: list[MemberResult]) -> tuple[Message, ...]:
    parts = [f"Question:\n{query}\n"]
    for i, a in enumerate(answers, 1):
        parts.append(f"Answer {i} ({a.platform}/{a.model}):\n{a.text}\n")
    if missing:
        parts.append("Members that failed: " + ", ".join(f"{m.platform}/{m.model}" for m in missing))
    return (Message("system", SYNTHESIS_SYSTEM), Message("user", "\n".join(parts)))


async def _member(gateway: Gateway, plan: RoutePlan, request: ChatRequest, ctx: CallContext, deadline: float) -> MemberResult:
    step = plan.steps[0]
    member_request = ChatRequest(request.messages, request.max_tokens, request.temperature)
    started = time.perf_counter()
    try:
        r = await gateway.complete(plan, member_request, ctx, deadline)
    except (AllProvidersFailed, ClientRequestError) as exc:
        return MemberResult(step.platform, step.model.id, False, None, str(exc), 0.0,
                            (time.perf_counter() - started) * 1000.0)
    return MemberResult(step.platform, step.model.id, True, r.response.text, None, r.cost_usd, r.latency_ms)


async def run_ensemble(
    gateway: Gateway,
    query: str,
    members: list[str],
    system_prompt: str | None,
    ctx: CallContext,
    deadline: float,
    max_tokens: int,
) -> EnsembleResult:
    started = time.perf_counter()
    cfg = gateway.config
    plans = member_plans(cfg, members)
    messages = ((Message("system", system_prompt),) if system_prompt else ()) + (Message("user", query),)
    request = ChatRequest(messages, max_tokens=max_tokens)
    member_ctx = replace(ctx, agent_id="ensemble-member")  # keeps the key's budgets
    results = tuple(await asyncio.gather(*(_member(gateway, p, request, member_ctx, deadline) for p in plans)))
    answers = [m for m in results if m.ok]
    if not answers:
        raise EnsembleFailed(results)
    synth_request = ChatRequest(synthesis_messages(query, answers, [m for m in results if not m.ok]), max_tokens=max_tokens)
    use_case = cfg.ensemble.synthesis_use_case
    plan = plan_for_use_case(cfg, gateway.catalog, use_case, "quality", len(query) // 2, max_tokens)
    synth_ctx = replace(ctx, agent_id="ensemble-synthesis", use_case=use_case)
    synthesis = await gateway.complete(plan, synth_request, synth_ctx, deadline)
    total = sum(m.cost_usd for m in results) + synthesis.cost_usd
    return EnsembleResult(synthesis.response.text, results, synthesis, total, (time.perf_counter() - started) * 1000.0)
