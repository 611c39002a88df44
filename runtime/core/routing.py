"""Pure route planning: which chain (or model) serves a request. No Ray, no I/O.

- `(use_case, priority)` → a chain through `config.routing`; a list there means *balanced*: the
  chain whose first live model has the lowest expected cost × expected latency for this request.
- The OpenAI-compatible `model` field: a catalog model or alias (a one-step plan), or
  `switchboard/<use_case>-<priority>` / `switchboard/<chain>` to route by chain.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from providers.capabilities import PARAMETERS, missing_capabilities, required_capabilities
from providers.catalog import Catalog, ModelSpec, UnknownModelError
from providers.tokens import IMAGE_TOKENS
from providers.types import ChatRequest
from runtime.config import PRIORITIES, USE_CASES, Config

ROUTE_PREFIX = "switchboard/"


@dataclass(frozen=True, slots=True)
class Step:
    platform: str
    model: ModelSpec


@dataclass(frozen=True, slots=True)
class RoutePlan:
    chain: str  # chain name, or "model:<platform>/<id>" for a direct model request
    steps: tuple[Step, ...]
    use_case: str | None = None
    priority: str | None = None
    #: steps left out before any call (platform, model id, why), reported with the failures
    skipped: tuple[tuple[str, str, str], ...] = ()


class UnknownRouteError(LookupError):
    """The requested model/route does not exist (HTTP 404 naming the `model` field)."""


def chain_steps(config: Config, catalog: Catalog, chain: str) -> tuple[Step, ...]:
    return tuple(
        Step(s.platform, catalog.resolve(s.model, s.platform)) for s in config.chains[chain]
    )


def expected_score(model: ModelSpec, input_tokens: int, output_tokens: int) -> float:
    """Expected cost (USD) × expected latency (s) of one call: lower is better."""
    cost = model.cost_usd(input_tokens, output_tokens)
    latency_s = model.expected_latency_ms(output_tokens) / 1000.0
    return cost * latency_s


def select_chain(
    config: Config,
    catalog: Catalog,
    use_case: str,
    priority: str,
    input_tokens: int,
    output_tokens: int,
) -> str:
    target = config.routing[use_case][priority]
    if isinstance(target, str):
        return target
    return min(
        target,
        key=lambda name: expected_score(
            chain_steps(config, catalog, name)[0].model, input_tokens, output_tokens
        ),
    )


def plan_for_use_case(
    config: Config,
    catalog: Catalog,
    use_case: str,
    priority: str,
    input_tokens: int,
    output_tokens: int,
) -> RoutePlan:
    chain = select_chain(config, catalog, use_case, priority, input_tokens, output_tokens)
    return RoutePlan(chain, chain_steps(config, catalog, chain), use_case, priority)


def plan_for_model_field(
    config: Config,
    catalog: Catalog,
    model: str,
    input_tokens: int,
    output_tokens: int,
) -> RoutePlan:
    """Plan for an OpenAI-style `model` value. Raises UnknownRouteError."""
    if model.startswith(ROUTE_PREFIX):
        route = model[len(ROUTE_PREFIX):]
        if route in config.chains:
            return RoutePlan(route, chain_steps(config, catalog, route))
        use_case, _, priority = route.partition("-")
        if use_case in USE_CASES and priority in PRIORITIES:
            return plan_for_use_case(config, catalog, use_case, priority, input_tokens, output_tokens)
        raise UnknownRouteError(
            f"unknown route {model!r}: use switchboard/<use_case>-<priority> "
            f"(use cases {', '.join(USE_CASES)}; priorities {', '.join(PRIORITIES)}) "
            f"or switchboard/<chain> (chains {', '.join(config.chains)})"
        )
    try:
        spec = catalog.resolve(model)
    except UnknownModelError:
        raise UnknownRouteError(f"unknown model {model!r}; GET /v1/models lists them") from None
    return RoutePlan(f"model:{spec.platform}/{spec.id}", (Step(spec.platform, spec),))


def virtual_models(config: Config) -> list[str]:
    """The route names /v1/models lists beside the catalog models."""
    names = [f"{ROUTE_PREFIX}{u}-{p}" for u in USE_CASES for p in PRIORITIES]
    return names + [f"{ROUTE_PREFIX}{c}" for c in config.chains]


class BudgetTooLowError(ValueError):
    """No candidate fits the request's max_cost_usd (HTTP 402, before any call)."""

    def __init__(self, max_cost_usd: float, cheapest_usd: float | None) -> None:
        hint = f"; the cheapest candidate needs about ${cheapest_usd:.6f}" if cheapest_usd is not None else ""
        super().__init__(f"max_cost_usd ${max_cost_usd:.6f} is below every candidate's estimated cost{hint}")
        self.max_cost_usd = max_cost_usd
        self.cheapest_usd = cheapest_usd


class ContextTooLongForAllError(ValueError):
    """The prompt plus max_tokens fits no candidate's context window (HTTP 400)."""


def estimated_cost(model: ModelSpec, input_tokens: int, output_tokens: int) -> float:
    """The budget router's estimate: prompt estimate + the output allowance at list prices."""
    return model.cost_usd(input_tokens, output_tokens)


def _all_steps(config: Config, catalog: Catalog) -> list[Step]:
    seen: dict[tuple[str, str], Step] = {}
    for name in config.chains:
        for step in chain_steps(config, catalog, name):
            seen.setdefault((step.platform, step.model.id), step)
    return list(seen.values())


def constrain(
    plan: RoutePlan,
    config: Config,
    catalog: Catalog,
    input_tokens: int,
    output_tokens: int,
    max_cost_usd: float | None = None,
) -> RoutePlan:
    """Drop steps whose context window cannot hold the request, then (with a budget) steps whose
    estimated cost exceeds it. If the plan's own chain has nothing within budget, the cheapest
    fitting models of any chain are used, cheapest first. Raises BudgetTooLowError /
    ContextTooLongForAllError when nothing is left."""
    needed = input_tokens + output_tokens
    steps = [s for s in plan.steps if s.model.context_window >= needed]
    if not steps:
        longest = max(s.model.context_window for s in plan.steps)
        raise ContextTooLongForAllError(
            f"the prompt (~{input_tokens} tokens) plus max_tokens ({output_tokens}) exceeds every "
            f"candidate's context window (largest: {longest} tokens)"
        )
    if max_cost_usd is None:
        return plan if len(steps) == len(plan.steps) else _replace_steps(plan, steps, plan.chain)
    fits = [s for s in steps if estimated_cost(s.model, input_tokens, output_tokens) <= max_cost_usd]
    if fits:
        return _replace_steps(plan, fits, plan.chain)
    anywhere = sorted(
        (s for s in _all_steps(config, catalog) if s.model.context_window >= needed),
        key=lambda s: estimated_cost(s.model, input_tokens, output_tokens),
    )
    fits = [s for s in anywhere if estimated_cost(s.model, input_tokens, output_tokens) <= max_cost_usd]
    if not fits:
        cheapest = estimated_cost(anywhere[0].model, input_tokens, output_tokens) if anywhere else None
        raise BudgetTooLowError(max_cost_usd, cheapest)
    return _replace_steps(plan, fits, f"budget:{plan.chain}")


def _replace_steps(plan: RoutePlan, steps: list[Step], chain: str) -> RoutePlan:
    return RoutePlan(chain, tuple(steps), plan.use_case, plan.priority, plan.skipped)


class CapabilityUnsupportedError(ValueError):
    """No candidate can serve what the request asks for (HTTP 400 naming the parameter)."""

    def __init__(self, capability: str, candidates: list[str]) -> None:
        self.capability = capability
        self.parameter = PARAMETERS[capability]
        super().__init__(f"no candidate model supports {capability!r} (asked for by {self.parameter}); "
                         f"tried: {', '.join(candidates)}")


def require_capabilities(plan: RoutePlan, request: ChatRequest) -> RoutePlan:
    """Skip the steps whose model lacks a capability the request needs; each skip is kept on
    the plan (reported with the failures). Nothing left: CapabilityUnsupportedError naming
    the first need the candidates lack."""
    needs = required_capabilities(request)
    if not needs:
        return plan
    kept, skipped = [], list(plan.skipped)
    for step in plan.steps:
        lacking = missing_capabilities(step.model, needs)
        if lacking:
            skipped.append((step.platform, step.model.id, f"does not support {', '.join(lacking)}"))
        else:
            kept.append(step)
    if not kept:
        first = next(n for n in needs if any(n in missing_capabilities(s.model, needs) for s in plan.steps))
        raise CapabilityUnsupportedError(first, [f"{s.platform}/{s.model.id}" for s in plan.steps])
    return RoutePlan(plan.chain, tuple(kept), plan.use_case, plan.priority, tuple(skipped))


def estimate_tokens(text_chars: int) -> int:
    """Cheap size estimate for route planning (the provider actor reserves exactly)."""
    return max(1, text_chars // 4)


def estimate_request_size(request: ChatRequest) -> int:
    """The planning estimate of a whole request: its text, tool calls, tool definitions and
    images (`IMAGE_TOKENS` each, as the reservation counts them)."""
    chars = sum(len(m.content) + sum(len(c.name) + len(c.arguments) for c in m.tool_calls) for m in request.messages)
    chars += sum(len(json.dumps(t.parameters)) + len(t.name) + len(t.description or "") for t in request.tools)
    return estimate_tokens(chars) + IMAGE_TOKENS * len(request.images)
