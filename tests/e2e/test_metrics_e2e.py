"""The `serve deploy` path and observability: the app built by runtime.serve_app:build (as Serve
would from serve_config.yaml) serves requests, and its metrics appear on Ray's Prometheus
endpoint. Also checks the deployment files themselves."""
from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml

from runtime.simulator_process import SimulatorProcess
from tests.e2e.conftest import ADMIN_KEY, auth_headers, wait_healthy

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
APP_NAME = "switchboard-deployed"
METRICS_WAIT_S = 60.0  # Ray flushes metrics every few seconds (2 s in the test cluster)


@pytest.fixture(scope="module")
def deployed(serve_port, tmp_path_factory):
    """serve_app.build → serve.run, with a vendor-key-free environment pointed at a simulator."""
    from ray import serve

    from runtime.app import RunningApp
    from runtime.serve_app import build_with

    data_dir = tmp_path_factory.mktemp("deployed")
    (data_dir / "admin.key").write_text(ADMIN_KEY + "\n")
    simulator = SimulatorProcess.start(latency_scale=0.0)
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_BASE_URL"))}
    env.pop("SWITCHBOARD_ADMIN_KEY", None)
    args = {"data_dir": str(data_dir), "namespace": f"sb-deploy-{uuid.uuid4().hex[:8]}",
            "simulator_url": simulator.url}
    try:
        application, prepared = build_with(args, env)
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        serve.run(application, name=APP_NAME, route_prefix="/", blocking=False)
    except BaseException:
        simulator.stop()
        raise
    running = RunningApp(None, prepared.config, prepared.admin_key, prepared.boot,  # type: ignore[arg-type]
                         f"http://127.0.0.1:{serve_port}", simulator, prepared.actors, APP_NAME)
    try:
        wait_healthy(running.url)
        yield running, args, env
    finally:
        running.stop()


def test_build_reuses_the_named_actors_and_reads_the_admin_key_file(deployed):
    from runtime.serve_app import build_with

    running, args, env = deployed
    _, again = build_with(args, env)
    assert {n: h._actor_id for n, h in again.actors.items()} == {
        n: h._actor_id for n, h in running.actors.items()
    }
    assert again.admin_key.value == ADMIN_KEY and not again.admin_key.created
    assert set(running.boot.simulated) == {"openai", "anthropic", "groq", "gemini", "openrouter"}


def test_unknown_builder_arg_is_refused_by_name():
    from runtime.serve_app import build

    with pytest.raises(ValueError, match="num_gpus"):
        build({"num_gpus": "1"})


def scrape(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).text


def samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("#") and name + "{" in line]


def test_request_and_cost_metrics_reach_rays_prometheus_endpoint(deployed, ray_metrics_port):
    running, _, _ = deployed
    for i in range(3):
        r = httpx.post(
            f"{running.url}/v1/chat/completions", headers=auth_headers(), trust_env=False, timeout=30,
            json={"model": "switchboard/chat-cost",
                  "messages": [{"role": "user", "content": f"metrics probe {uuid.uuid4().hex} #{i}"}]},
        )
        assert r.status_code == 200, r.text
    platform = r.headers["x-switchboard-platform"]

    give_up = time.monotonic() + METRICS_WAIT_S
    while True:  # bounded wait for Ray's periodic metrics flush
        text = scrape(ray_metrics_port)
        requests = [s for s in samples(text, "switchboard_requests_total")
                    if 'endpoint="/v1/chat/completions"' in s and 'status="200"' in s]
        costs = [s for s in samples(text, "switchboard_cost_usd_total") if f'platform="{platform}"' in s]
        if (requests and costs) or time.monotonic() > give_up:
            break
        time.sleep(1.0)
    assert requests, "switchboard_requests_total for /v1/chat/completions never appeared"
    assert costs, f"switchboard_cost_usd_total for {platform} never appeared"
    assert max(float(s.rsplit(" ", 1)[1]) for s in requests) >= 3
    assert max(float(s.rsplit(" ", 1)[1]) for s in costs) > 0
    assert ADMIN_KEY not in text


def test_serve_config_is_a_valid_deploy_config_for_the_builder():
    from ray.serve.schema import ServeDeploySchema

    from runtime.deployment import GatewayDeployment
    from runtime.serve_app import ARG_NAMES, build

    config = ServeDeploySchema.model_validate(yaml.safe_load((ROOT / "serve_config.yaml").read_text()))
    (app,) = config.applications
    module, _, attr = app.import_path.partition(":")
    assert getattr(__import__(module, fromlist=[attr]), attr) is build
    assert set(app.args) <= set(ARG_NAMES)
    (dep,) = app.deployments
    assert dep.name == GatewayDeployment.name
    assert dep.num_replicas * dep.ray_actor_options.num_cpus <= 0.5  # leaves room on 2 cores
    assert dep.max_ongoing_requests >= 1


def test_cluster_files_keep_ray_off_6379_and_the_dashboard_private():
    for name in ("cluster.yaml", "cluster.aws.yaml"):
        cluster = yaml.safe_load((ROOT / name).read_text())
        head = " ".join(cluster["head_start_ray_commands"])
        assert "--port=6380" in head and "--dashboard-host=127.0.0.1" in head
        assert "6380" in " ".join(cluster["worker_start_ray_commands"])
        assert any("pip install" in c for c in cluster["setup_commands"])
        assert any("serve deploy serve_config.yaml" in c for c in cluster["head_start_ray_commands"])
