"""Ray options shared by every Switchboard actor: named (looked up by replicas), detached
(outlives its creator), restarted after a crash, calls never replayed (max_task_retries=0: our
calls are not idempotent), no CPU reserved (they do I/O, not compute)."""
from __future__ import annotations

from typing import Any

#: for actors called at request rate or in a steady background stream (providers, ledger,
#: cache, key rate, idempotency): Ray keeps no task event per call. Each one would be stored in
#: the GCS (up to its cap of 100,000 tasks): in a 100,000-request soak its RSS grew 43%. The
#: actors themselves, their logs and metrics still show in the dashboard.
HIGH_RATE: dict[str, Any] = {"enable_task_events": False}


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
