"""The admin key: from SWITCHBOARD_ADMIN_KEY, or generated on first start and stored (mode 0600)
under the data dir. Only its digest leaves this module."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

ADMIN_KEY_FILE = "admin.key"


@dataclass(frozen=True, slots=True)
class AdminKey:
    value: str
    created: bool  # True when generated just now (print it once)
    path: Path | None


def load_or_create_admin_key(data_dir: Path, from_env: str | None) -> AdminKey:
    if from_env:
        return AdminKey(from_env, created=False, path=None)
    path = data_dir / ADMIN_KEY_FILE
    if path.exists():
        return AdminKey(path.read_text(encoding="utf-8").strip(), created=False, path=path)
    data_dir.mkdir(parents=True, exist_ok=True)
    value = "sk-sb-admin-" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value + "\n")
    return AdminKey(value, created=True, path=path)
