"""Ray options shared by every Switchboard actor: named (looked up by replicas), detached
(outlives its creator), restarted after a crash, calls never replayed (max_task_retries=0: our
calls are not idempotent), no CPU reserved (they do I/O, not compute)."""
from __future__ import annotations

from typing import Any


def named_actor_options(name: str | None, namespace: str | None, **overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "max_concurrency": 1000,
    }
    if name is not None:
        options["name"] = name
    if namespace is not None:
        options["namespace"] = namespace
    for key, value in overrides.items():  # an override of None removes the option
        if value is None:
            options.pop(key, None)
        else:
            options[key] = value
    return options
