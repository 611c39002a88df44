"""The configuration a benchmark run uses: the shipped switchboard.yaml with two documented
changes, written to bench/out/bench-config.yaml and given to Switchboard and the simulators.

1. gpt-4o (the overhead target) has no rpm/tpm/rpd limit, on both sides: the overhead runs
   measure the gateway, not gpt-4o's 500 rpm (the simulator also runs with --no-limits there).
2. The bulk chain keeps its real rpm/tpm, but its daily caps (rpd) are lifted: gemini flash-lite's
   1,500/day would end a 2,000-prompt job rather than pace it (the simulator has no daily cap).
3. `protection.window_scale` (when given) shrinks Switchboard's limit windows; the simulator gets
   the same window with `--window-s 60*scale`, so both sides count the same windows.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.procs import OUT
from providers.settings import DEFAULT_CONFIG_PATH
from runtime.config import load_config

UNLIMITED = ("openai", "gpt-4o")
BULK_CHAIN = "bulk"


def bench_config_data(source: Path = DEFAULT_CONFIG_PATH, window_scale: float = 1.0) -> dict[str, Any]:
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    catalog = load_config(source).catalog()
    bulk = {(s["platform"], catalog.resolve(s["model"], s["platform"]).id) for s in data["chains"][BULK_CHAIN]}
    for model in data["models"]:
        key = (model["platform"], model["id"])
        if key == UNLIMITED:
            model.update(rpm=None, tpm=None, rpd=None)
        elif key in bulk:
            model["rpd"] = None
    if window_scale != 1.0:
        data.setdefault("protection", {})["window_scale"] = window_scale
    return data


def write_bench_config(path: Path | None = None, window_scale: float = 1.0) -> Path:
    path = path or OUT / "bench-config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = bench_config_data(window_scale=window_scale)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    load_config(path)  # still valid
    return path
