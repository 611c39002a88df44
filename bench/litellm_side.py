"""LiteLLM for the side-by-side runs, in its own venv (bench/.venv-litellm, gitignored):
`pip install 'litellm[proxy]'` there on first use, then its proxy as a child process and its
Router in-process (bench/litellm_router_load.py, run by that venv's python). Both are pointed at
the simulator's OpenAI path with an `openai/` model, with the local cost map (no network)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from bench.procs import HERE, LOOPBACK, OUT, Child, clean_env, spawn, wait_http
from runtime.simulator_process import free_port

VENV = HERE / ".venv-litellm"
PY = VENV / "bin" / "python"
MASTER_KEY = "sk-litellm-bench"
UPSTREAM_KEY = "sim-bench-key"
MODEL = "gpt-4o"

#: no network: the bundled cost map, no telemetry, no update checks
OFFLINE_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
    "LITELLM_DONT_SHOW_FEEDBACK_BOX": "True",
    "DISABLE_SCHEMA_UPDATE": "True",
    "NO_PROXY": "*",
}


def ensure_venv() -> Path:
    if not PY.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(PY), "-c", "import litellm, litellm.proxy"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(PY), "-m", "pip", "install", "--quiet", "litellm[proxy]"], check=True)
    return PY


def version() -> str:
    out = subprocess.run([str(PY), "-c", "from importlib.metadata import version; print(version('litellm'))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def model_list(sim_url: str) -> list[dict]:
    return [{
        "model_name": MODEL,
        "litellm_params": {"model": f"openai/{MODEL}", "api_base": f"{sim_url}/v1", "api_key": UPSTREAM_KEY},
    }]


def start_proxy(sim_url: str) -> Child:
    """LiteLLM's proxy (one uvicorn worker, like one Switchboard replica), master key set."""
    ensure_venv()
    config = {
        "model_list": model_list(sim_url),
        "litellm_settings": {"telemetry": False, "drop_params": True},
        "general_settings": {"master_key": MASTER_KEY},
    }
    path = OUT / "litellm-proxy.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = free_port()
    cmd = [str(VENV / "bin" / "litellm"), "--config", str(path), "--host", LOOPBACK, "--port", str(port),
           "--num_workers", "1"]
    child = spawn("litellm-proxy", cmd, f"http://{LOOPBACK}:{port}", clean_env(**OFFLINE_ENV))
    wait_http(child, "/health/liveliness", 180)
    return child


def run_router(sim_url: str, concurrencies: list[int], duration_s: float) -> dict:
    """LiteLLM's Router in-process, beside a plain in-process client as its own baseline."""
    ensure_venv()
    args = {"model_list": model_list(sim_url), "sim_url": sim_url, "model": MODEL, "key": UPSTREAM_KEY,
            "concurrencies": concurrencies, "duration_s": duration_s}
    out = subprocess.run(
        [str(PY), str(HERE / "litellm_router_load.py"), json.dumps(args)],
        capture_output=True, text=True, env=clean_env(**OFFLINE_ENV),
        timeout=180 + 4 * duration_s * (len(concurrencies) + 1),
    )
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"LiteLLM Router run failed ({out.returncode}): {out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])
