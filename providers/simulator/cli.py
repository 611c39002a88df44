"""Run the simulator: `python -m providers.simulator --port 8900` (or `switchboard simulate`)."""
from __future__ import annotations

import argparse
from typing import Any, Sequence

from providers.settings import load_catalog
from providers.simulator.faults import load_rules

DEFAULT_PORT = 8900


def serve(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, log_level: str = "warning",
          **options: Any) -> None:
    """Serve the simulator with uvicorn until interrupted. `options` are `SimulatorConfig`
    fields (catalog, latency_scale, fixed_latency_ms, limits_enabled, window_s, faults, seed...)."""
    import uvicorn

    from providers.simulator.app import create_app
    from providers.simulator.engine import SimulatorConfig

    app = create_app(SimulatorConfig(**options))
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                timeout_graceful_shutdown=1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m providers.simulator",
        description="Local upstream speaking the OpenAI, Groq, OpenRouter, Anthropic and Gemini "
        "wire protocols, with deterministic answers, vendor rate limits and fault injection.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--latency-scale", type=float, default=1.0,
                   help="multiply each model's ttft + tokens/s latency (0 = no delay)")
    p.add_argument("--fixed-latency-ms", type=float, default=None,
                   help="answer every request after this latency instead")
    p.add_argument("--config", default=None, help="switchboard YAML whose models: it serves (default: SWITCHBOARD_CONFIG, else the shipped one)")
    p.add_argument("--no-limits", action="store_true", help="disable the per-model rpm/tpm limiter")
    p.add_argument("--window-s", type=float, default=60.0, help="rate-limit window (default 60)")
    p.add_argument("--faults", default=None,
                   help="fault rules: inline JSON, or a JSON/YAML file (see POST /_sim/faults)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fault RNG")
    p.add_argument("--log-level", default="warning")
    return p


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "catalog": load_catalog(args.config),
        "latency_scale": args.latency_scale,
        "fixed_latency_ms": args.fixed_latency_ms,
        "limits_enabled": not args.no_limits,
        "window_s": args.window_s,
        "faults": tuple(load_rules(args.faults)) if args.faults else (),
        "seed": args.seed,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.latency_scale < 0 or (args.fixed_latency_ms is not None and args.fixed_latency_ms < 0):
        parser.error("latencies must be >= 0")
    try:
        options = options_from_args(args)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    serve(args.host, args.port, log_level=args.log_level, **options)
    return 0
