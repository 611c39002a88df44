"""`main`: argument parsing, and a real child process answering over HTTP."""
from __future__ import annotations

import httpx
import pytest

from providers.simulator.cli import build_parser, main, options_from_args


def test_defaults_and_options():
    args = build_parser().parse_args([])
    assert args.host == "127.0.0.1" and args.latency_scale == 1.0 and not args.no_limits
    opts = options_from_args(build_parser().parse_args([
        "--latency-scale", "0", "--fixed-latency-ms", "5", "--no-limits", "--seed", "7",
        "--faults", '{"platform": "openai", "model": "gpt-4o", "status": 503}',
    ]))
    assert opts["latency_scale"] == 0 and opts["fixed_latency_ms"] == 5
    assert opts["limits_enabled"] is False and opts["seed"] == 7
    assert opts["faults"][0].status == 503
    assert len(opts["catalog"]) > 10


def test_rejects_negative_latency():
    with pytest.raises(SystemExit) as exc:
        main(["--latency-scale", "-1"])
    assert exc.value.code == 2


def test_module_entry_point_serves_http():
    from runtime.simulator_process import SimulatorProcess

    sim = SimulatorProcess.start(latency_scale=0.0)
    try:
        r = httpx.post(f"{sim.url}/v1/chat/completions", trust_env=False,
                       headers={"authorization": "Bearer k"},
                       json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 200 and r.json()["model"] == "gpt-4o"
    finally:
        sim.stop()
