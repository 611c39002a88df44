"""The shipped config validates, and bad configs fail with a message naming the problem."""
import copy

import pytest
import yaml
from pydantic import ValidationError

from providers.settings import DEFAULT_CONFIG_PATH
from runtime.config import Config, load_config


def _raw():
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_default_config_loads_and_env_override(tmp_path, monkeypatch):
    cfg = load_config()
    assert set(cfg.platforms) == {"openai", "anthropic", "groq", "gemini", "openrouter"}
    assert set(cfg.chains) >= {"chat_speed", "chat_cost", "code_quality", "code_cost", "reasoning", "bulk"}
    raw = _raw()
    raw["server"]["request_timeout_s"] = 7
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(path))
    assert load_config().server.request_timeout_s == 7


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: r["chains"]["bulk"].append({"platform": "groq", "model": "nope"}), "nope"),
        (lambda r: r["routing"]["chat"].pop("speed"), "speed"),
        (lambda r: r["routing"]["chat"].__setitem__("cost", "missing_chain"), "missing_chain"),
        (lambda r: r["models"][0].__setitem__("input_per_1m", -1), "input_per_1m"),
        (lambda r: r["chains"].__setitem__("empty", []), "empty"),
    ],
)
def test_bad_configs_name_the_problem(mutate, needle):
    raw = copy.deepcopy(_raw())
    mutate(raw)
    with pytest.raises((ValidationError, LookupError)) as info:
        Config.model_validate(raw)
    assert needle in str(info.value)
