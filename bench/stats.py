"""Small statistics helpers (nearest-rank percentiles over sorted samples)."""
from __future__ import annotations

import statistics


def percentile(sorted_samples: list[float], q: float) -> float:
    """Nearest-rank percentile, q in [0, 1]; the list must be sorted and non-empty."""
    return sorted_samples[min(len(sorted_samples) - 1, max(0, int(round(q * len(sorted_samples))) - 1))]


def summarize(samples: list[float]) -> dict[str, float] | None:
    if not samples:
        return None
    s = sorted(samples)
    return {"n": len(s), "p50": round(percentile(s, 0.50), 3), "p95": round(percentile(s, 0.95), 3),
            "p99": round(percentile(s, 0.99), 3), "mean": round(statistics.fmean(s), 3),
            "max": round(s[-1], 3)}
