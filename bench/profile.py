"""Where the gateway's CPU goes: py-spy (installed into .venv from PyPI when missing) samples the
Serve processes of a running Switchboard while wrk loads it; the collapsed stacks are folded
into shares of the samples by package, by project function (inclusive) and by function (self)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Mapping

from bench.loadgen import run_wrk
from bench.procs import OUT
from bench.sysinfo import find_in_tree

#: Ray process titles worth sampling, by role
ROLES = {"replica": "ServeReplica:switchboard:gateway", "proxy": "ProxyActor",
         "provider:openai": "ProviderActor", "ledger": "LedgerActor"}


def ensure_py_spy() -> str:
    path = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(path).exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], check=True)
    return path


#: stacks whose last Python frame only enters native code (the Ray core worker's main loop, a
#: thread's C-level run loop): py-spy counts them active, but Python cannot say what they do
IDLE_FRAMES = ("Worker.main_loop", "Thread.run")
PROJECT = ("runtime/", "providers/", "agents/", "blackboard/")


def fold(raw_path: Path, top: int = 15) -> dict:
    """From py-spy's raw (collapsed) output, over the non-idle samples: each package's share of
    self time, the project's functions by inclusive share, and the top self functions."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    package: Counter[str] = Counter()
    total = idle = 0
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = [_split(f) for f in stack.split(";") if f]
        if not frames or frames[-1][0] in IDLE_FRAMES:
            idle += n
            continue
        total += n
        for name in {f"{path}:{func}" for func, path in frames if path.startswith(PROJECT)}:
            inclusive[name] += n
        func, path = frames[-1]
        own[f"{path}:{func}"] += n
        package[_package(path)] += n
    share = lambda c, k: [{"function": name, "share": round(v / total, 4)} for name, v in c.most_common(k)]  # noqa: E731
    if not total:
        return {"samples": 0, "idle_samples": idle, "inclusive": [], "self": [], "packages": []}
    return {"samples": total, "idle_samples": idle, "inclusive": share(inclusive, top),
            "self": share(own, top), "packages": share(package, 12)}


def _split(frame: str) -> tuple[str, str]:
    """`func (path/file.py:123)` -> (`func`, `path/file.py`)."""
    name, _, where = frame.partition(" (")
    return name, where.rstrip(")").rsplit(":", 1)[0]


def _package(path: str) -> str:
    """`ray/serve/_private/replica.py` -> `ray.serve`; `runtime/core/gateway.py` -> `runtime`."""
    parts = Path(path).parts
    if not parts:
        return "?"
    if parts[0] == "ray" and len(parts) > 2:
        return f"ray.{parts[1]}"
    return parts[0].removesuffix(".py")


def profile(root_pid: int, url: str, body: dict, headers: Mapping[str, str], duration_s: float = 10.0,
            concurrency: int = 16, roles: tuple[str, ...] = ("replica", "proxy")) -> dict:
    spy = ensure_py_spy()
    targets = {}
    for role in roles:
        pids = find_in_tree(root_pid, ROLES[role])
        if pids:
            targets[role] = pids[0]
    procs = {}
    for role, pid in targets.items():
        raw = OUT / f"profile-{role.replace(':', '-')}.txt"
        procs[role] = (raw, subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--duration", f"{int(duration_s)}", "--rate", "200",
             "--nonblocking", "--format", "raw", "--output", str(raw)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    load = threading.Thread(target=run_wrk, args=("profile", url, body, headers, concurrency, duration_s + 2))
    load.start()
    out = {}
    for role, (raw, proc) in procs.items():
        _, err = proc.communicate(timeout=duration_s + 60)
        out[role] = fold(raw) if raw.exists() else {"error": err.decode(errors="replace")[-500:]}
    load.join()
    return out
