"""The PNG figures of bench/RESULTS.md (matplotlib, Agg), each stamped with its conditions."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent


def _footer(fig, text: str) -> None:
    fig.text(0.01, 0.01, text, fontsize=7, color="#555555", ha="left", va="bottom", wrap=True)


def overhead(series: dict[str, list[dict]], added: dict[str, list[dict]], footer: str,
             path: Path = HERE / "overhead.png") -> Path:
    """Left three: added p50/p95/p99 vs concurrency; right: requests/s vs concurrency."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.3))
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = {name: palette[i % len(palette)] for i, name in enumerate(series)}
    for i, p in enumerate(("p50", "p95", "p99")):
        ax = axes[i]
        for name, rows in added.items():
            xs = [r["concurrency"] for r in rows]
            ax.plot(xs, [max(r[f"added_{p}"], 0.01) for r in rows], marker="o", label=name, color=color[name])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"added latency {p} (ms, log)")
        ax.set_xlabel("concurrency")
        ax.grid(True, which="both", alpha=0.3)
    ax = axes[3]
    for name, rows in series.items():
        ax.plot([r["concurrency"] for r in rows], [r["rps"] for r in rows], marker="o", label=name,
                color=color[name])
    ax.set_xscale("log", base=2)
    ax.set_title("requests/s (closed loop)")
    ax.legend(fontsize=6)
    ax.set_xlabel("concurrency")
    ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=6)
    _footer(fig, footer)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def modes(bars: list[tuple[str, float, float]], footer: str, path: Path = HERE / "modes.png") -> Path:
    """(label, max sustained rps, CPU ms per request) per Serve mode / replica count."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    labels = [x[0] for x in bars]
    a.bar(labels, [x[1] for x in bars], color="#4477aa")
    a.set_title("max sustained requests/s (< 1% errors)")
    b.bar(labels, [x[2] for x in bars], color="#cc6677")
    b.set_title("gateway CPU ms per request (all its processes)")
    for ax in (a, b):
        ax.tick_params(axis="x", labelsize=8, rotation=15)
        ax.grid(True, axis="y", alpha=0.3)
    _footer(fig, footer)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def bulk(done_times: list[float], per_window: float, window_s: float, minimum_s: float, n: int,
         footer: str, path: Path = HERE / "bulk.png") -> Path:
    """Completed prompts over time against the rate-limit capacity staircase."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(done_times, range(1, len(done_times) + 1), label="completed (Switchboard)")
    end = max(done_times[-1] if done_times else 0.0, minimum_s) * 1.05
    if per_window > 0 and not math.isinf(per_window):
        xs, ys, k = [], [], 0
        while k * window_s <= end:
            xs += [k * window_s, (k + 1) * window_s]
            ys += [min(n, per_window * (k + 1))] * 2
            k += 1
        ax.plot(xs, ys, "--", label="capacity admitted by the chain's rpm/tpm")
    ax.axvline(minimum_s, color="gray", ls=":", label=f"rate-limit minimum {minimum_s:.1f} s")
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("prompts")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    _footer(fig, footer)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
