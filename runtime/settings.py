"""Process settings from the environment (the YAML file holds everything else)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("var")
    admin_key: str | None = None
    redis_url: str | None = None
    config_path: str | None = None
    namespace: str = "switchboard"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        port_text = env.get("SWITCHBOARD_PORT", "8000")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"SWITCHBOARD_PORT must be an integer, got {port_text!r}") from None
        return cls(
            host=env.get("SWITCHBOARD_HOST", "127.0.0.1"),
            port=port,
            data_dir=Path(env.get("SWITCHBOARD_DATA_DIR", "var")).resolve(),
            admin_key=env.get("SWITCHBOARD_ADMIN_KEY") or None,
            redis_url=env.get("REDIS_URL") or None,
            config_path=env.get("SWITCHBOARD_CONFIG") or None,
            namespace=env.get("SWITCHBOARD_NAMESPACE", "switchboard"),
        )
