"""The `switchboard` CLI as a subprocess against one live app (Ray + Serve + simulator)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from runtime.config import load_config
from tests.e2e.conftest import ADMIN_KEY, auth_headers, live_switchboard, sim_counts

pytestmark = pytest.mark.e2e
CLI = str(Path(sys.executable).with_name("switchboard"))
CFG = load_config()


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    with live_switchboard(tmp_path_factory.mktemp("cli"), serve_port) as running:
        yield running


@pytest.fixture(scope="module")
def routes(app) -> set[str]:
    schema = httpx.get(f"{app.url}/openapi.json", trust_env=False, timeout=10).json()
    return set(schema.get("paths", {}))


def run_cli(app, *args: str, key: str | None = ADMIN_KEY, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_URL"] = app.url
    env["SWITCHBOARD_DATA_DIR"] = str(app.settings.data_dir)  # no admin.key there: --key/env only
    if key:
        env["SWITCHBOARD_API_KEY"] = key
    done = subprocess.run([CLI, *args], env=env, capture_output=True, timeout=timeout)
    # bytes, decoded here: text mode would turn the progress bar's "\r" into "\n"
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def chat(app, prompt: str, key: str = ADMIN_KEY) -> httpx.Response:
    return httpx.post(
        f"{app.url}/v1/chat/completions", trust_env=False, timeout=30,
        headers={"authorization": f"Bearer {key}"},
        json={"model": "switchboard/chat-cost", "messages": [{"role": "user", "content": prompt}]},
    )


def test_bulk_writes_one_result_per_input_in_order_with_progress(app, tmp_path):
    lines = [
        json.dumps({"id": "a", "prompt": "Translate 'hello' to French."}),
        json.dumps({"id": "b", "prompt": "Translate 'thank you' to German."}),
        "{not json",
        json.dumps({"messages": [{"role": "user", "content": "Translate 'cat' to Spanish."}]}),
        json.dumps({"id": "e", "prompt": ""}),
        json.dumps({"id": "f", "prompt": "Translate 'water' to Italian."}),
    ]
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text("\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")  # a blank line too
    before = sim_counts(app)

    done = run_cli(app, "bulk", str(source), "--chain", "bulk", "--concurrency", "2", "-o", str(out))

    assert done.returncode == 1, done.stderr  # two inputs are invalid
    results = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in results] == ["a", "b", 3, 5, "e", "f"]  # input order; line numbers as ids
    ok = [r for r in results if "text" in r]
    assert [r["id"] for r in ok] == ["a", "b", 5, "f"]
    head = CFG.chains["bulk"][0]
    for r in ok:
        assert r["text"] and (r["platform"], r["model"]) == (head.platform, head.model)
        assert r["cost_usd"] > 0
    assert "invalid JSON" in results[2]["error"] and "prompt" in results[4]["error"]
    assert "\r[" in done.stderr and "] 6/6" in done.stderr
    assert "4/6 ok, 2 failed" in done.stderr
    served = sum(sim_counts(app).values()) - sum(before.values())
    assert served == 4  # the invalid lines never reached an upstream


def test_bulk_by_use_case_succeeds_and_reports_errors_per_item(app, tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(json.dumps({"id": 1, "prompt": "Name a prime."}) + "\n")
    done = run_cli(app, "bulk", str(source), "--use-case", "chat", "--priority", "cost", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["text"]

    refused = run_cli(app, "bulk", str(source), "--use-case", "chat", "--priority", "cost",
                      "-o", str(out), key="sk-not-a-key")
    assert refused.returncode == 1
    result = json.loads(out.read_text())
    assert result["id"] == 1 and "401" in result["error"]


def test_bad_key_is_one_clear_line_not_a_traceback(app):
    done = run_cli(app, "costs", key="sk-wrong")
    assert done.returncode == 1
    assert "HTTP 401" in done.stderr and "Traceback" not in done.stderr


def test_keys_round_trip(app, routes):
    if "/api/keys" not in routes:
        pytest.skip("POST/GET /api/keys is not in this gateway's OpenAPI schema yet (runtime/http/routes/finops.py)")
    created = run_cli(app, "keys", "create", "--user", "cli-alice", "--agent", "cli-test",
                      "--daily-usd", "1.5", "--rpm", "30")
    assert created.returncode == 0, created.stderr
    key = created.stdout.split("store it now): ", 1)[1].split()[0]
    key_id = created.stdout.split("created key ", 1)[1].split()[0]
    assert chat(app, "hello from a user key", key=key).status_code == 200

    listing = run_cli(app, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith(key_id))
    assert "cli-alice" in row and "cli-test" in row and "1.5" in row and row.split()[6] == "no"
    assert key not in listing.stdout

    disabled = run_cli(app, "keys", "disable", key_id)
    assert disabled.returncode == 0, disabled.stderr
    row = next(line for line in run_cli(app, "keys", "list").stdout.splitlines() if line.startswith(key_id))
    assert row.split()[6] == "yes"

    missing = run_cli(app, "keys", "disable", "key_000000000000")
    assert missing.returncode == 1 and "404" in missing.stderr


def test_costs_report_and_daily_chart(app, routes):
    if "/api/ai/costs/daily" not in routes:
        pytest.skip("GET /api/ai/costs/daily is not in this gateway's OpenAPI schema yet (runtime/http/routes/finops.py)")
    assert chat(app, "What is a monoid?").status_code == 200
    summary = httpx.get(f"{app.url}/api/ai/costs/summary", params={"days": 3},
                        headers=auth_headers(), trust_env=False).json()

    done = run_cli(app, "costs", "--days", "3")

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"requests  {summary['total']['requests']}" in out
    for m in summary["by_model"]:
        assert m["model"] in out
    today = datetime.now(timezone.utc).strftime("%Y-%m-%d")
    bars = [line for line in out.splitlines() if line.strip().startswith("20") and "|" in line]
    assert len(bars) == 3 and bars[-1].strip().startswith(today)
    assert "#" in bars[-1]  # today has spend

    bad = run_cli(app, "costs", "--days", "0")
    assert bad.returncode == 2 and "--days" in bad.stderr


def test_review_prints_the_report(app, routes, tmp_path):
    if "/api/ai/review" not in routes:
        pytest.skip("POST /api/ai/review is not in this gateway's OpenAPI schema yet (runtime/agent_routes.py)")
    if not any("coordinator" in name for name in app.actors):
        pytest.skip("runtime/app.py start_actors does not start the Coordinator actor yet: review answers 503")
    source = tmp_path / "snippet.py"
    source.write_text("def add(a, b):\n    return eval(f'{a} + {b}')\n")
    done = run_cli(app, "review", str(source))
    assert done.returncode == 0, done.stderr
    assert f"Code review of {source}" in done.stdout and "Steps:" in done.stdout
    assert "Total cost: $" in done.stdout

    empty = tmp_path / "empty.py"
    empty.write_text("")
    refused = run_cli(app, "review", str(empty))
    assert refused.returncode == 2 and "empty" in refused.stderr
