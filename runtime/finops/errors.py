"""The two ways FinOps stops a request before any provider call, as exceptions the HTTP edge maps
once (runtime/http/routes/finops.py): a budget that does not allow it (402) and a ledger that
cannot be reached (503)."""
from __future__ import annotations


class BudgetRefusedError(Exception):
    """A request the budget does not allow (HTTP 402, naming the budget)."""

    def __init__(self, budget: str, message: str, *, limit_usd: float | None = None,
                 spent_usd: float | None = None, reserved_usd: float | None = None,
                 requested_usd: float | None = None) -> None:
        super().__init__(message)
        self.budget = budget
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = reserved_usd
        self.requested_usd = requested_usd


class LedgerUnavailableError(Exception):
    """The ledger could not be reached in time: nothing is sent upstream unrecorded (HTTP 503)."""
