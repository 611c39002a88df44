"""What a request owes for the attempts it sent and never heard back from.

A read timeout or a connection lost after the request went out does not mean the vendor did
not run it: it may have generated the whole answer, and billed it, after we stopped listening
(providers/types.py `ProviderError.unanswered`). The ledger must never be under-charged, so each
such attempt is charged at its worst case (the prompt estimate plus max_tokens at the model's
catalog prices) on top of what the request's served call cost, and the row is `unknown`: its
cost is an upper bound, not a count.
"""
from __future__ import annotations

from typing import Iterable

from providers.catalog import Catalog
from providers.tokens import estimate_request_tokens
from providers.types import ChatRequest, ProviderError
from runtime.core.router import AllProvidersFailed, ClientRequestError, Failure

#: (platform, model id, attempts sent and never answered)
Unanswered = tuple[str, str, int]


def of_failures(failures: Iterable[Failure]) -> list[Unanswered]:
    return [(f.platform, f.model, f.unanswered) for f in failures if f.unanswered]


def of_error(exc: AllProvidersFailed | ClientRequestError) -> list[Unanswered]:
    if isinstance(exc, AllProvidersFailed):
        return of_failures(exc.failures)
    err: ProviderError = exc.error
    return [(err.platform, err.model, err.unanswered)] if err.unanswered else []


def worst_case_usd(catalog: Catalog, request: ChatRequest, unanswered: Iterable[Unanswered],
                   default_max_tokens: int) -> float:
    """The most those attempts can have cost."""
    output = request.max_tokens if request.max_tokens is not None else default_max_tokens
    total = 0.0
    for platform, model_id, attempts in unanswered:
        spec = catalog.get(platform, model_id)
        total += attempts * spec.cost_usd(estimate_request_tokens(request, spec), output)
    return total
