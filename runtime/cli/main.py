"""The `switchboard` command.

`serve` and `simulate` run processes here; every other command talks to a running gateway over
HTTP (`--url`, `--key`; see runtime/cli/client.py) and lives in its own module of runtime/cli/."""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from runtime.cli import bulk as cli_bulk, costs as cli_costs, keys as cli_keys, review as cli_review
from runtime.cli.client import CliError


def _serve(args: argparse.Namespace) -> int:
    from runtime.app import announce, init_ray, start
    from runtime.settings import Settings

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    stop = threading.Event()
    _on_stop_signals(stop)
    use_fast_ingress()
    init_ray(settings)
    _on_stop_signals(stop)  # again: ray.init installs its own SIGTERM handler, which aborts
    app = start(settings, simulator_latency_scale=args.latency_scale)  # a signal meanwhile counts
    announce(app)
    stop.wait()
    print("Switchboard: shutting down (draining the ledger)...", file=sys.stderr, flush=True)
    app.shutdown()
    print("Switchboard: stopped.", file=sys.stderr, flush=True)
    return 0


FAST_INGRESS_ENV = {"RAY_SERVE_THROUGHPUT_OPTIMIZED": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}


def use_fast_ingress(env: dict[str, str] | None = None) -> None:
    """Serve's throughput-optimized mode with HAProxy in front: measured fastest here
    (bench/RESULTS.md: lower added p50 than LiteLLM's proxy; the default Python proxy is not).
    HAProxy also binds 0.0.0.0 on 8404 and 9101 (stats): firewall them. SWITCHBOARD_PROXY=serve
    keeps Serve's default proxy. Must run before Ray starts (its processes inherit the env)."""
    env = os.environ if env is None else env
    if env.get("SWITCHBOARD_PROXY", "haproxy") == "haproxy":
        for name, value in FAST_INGRESS_ENV.items():
            env.setdefault(name, value)


def _on_stop_signals(stop: threading.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


def _simulate(argv: list[str]) -> int:
    from providers.simulator import main as simulator_main

    return simulator_main(argv)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Multi-LLM orchestration gateway on Ray")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the gateway (embedded Ray + Serve)")
    serve.add_argument("--latency-scale", type=float, default=1.0,
                       help="simulator latency multiplier when the simulator is used (0 = instant)")
    serve.set_defaults(run=_serve)
    sub.add_parser("simulate", help="run the five-vendor provider simulator", add_help=False)
    for module in (cli_keys, cli_costs, cli_review, cli_bulk):
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "simulate":
        return _simulate(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"switchboard {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
