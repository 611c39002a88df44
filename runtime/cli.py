"""The `switchboard` command."""
from __future__ import annotations

import argparse
import signal
import sys
import threading


def _serve(args: argparse.Namespace) -> int:
    from runtime.app import announce, start
    from runtime.settings import Settings

    settings = Settings.from_env()
    app = start(settings, simulator_latency_scale=args.latency_scale)
    announce(app)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    print("Switchboard: shutting down (draining the ledger)...", file=sys.stderr, flush=True)
    app.stop()
    import ray

    ray.shutdown()
    return 0


def _simulate(argv: list[str]) -> int:
    from providers.simulator import main as simulator_main

    return simulator_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Multi-LLM orchestration gateway on Ray")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the gateway (embedded Ray + Serve)")
    serve.add_argument("--latency-scale", type=float, default=1.0,
                       help="simulator latency multiplier when the simulator is used (0 = instant)")
    sub.add_parser("simulate", help="run the five-vendor provider simulator", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        return _simulate(argv[1:])
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
