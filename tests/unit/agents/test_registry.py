from __future__ import annotations

import pytest
import yaml

from agents.registry import DEFAULT_REGISTRY_PATH, RegistryError, default_registry, load_registry, parse_registry

AREAS_REQUIRED = {
    "code", "ui", "visual-editor", "data", "security", "billing", "travel", "devops", "docs",
    "testing", "i18n", "analytics", "support", "general",
}


def minimal(**overrides) -> dict:
    data = {
        "fallback": "general",
        "escalation": "human",
        "agents": [
            {"id": "general", "name": "G", "area": "general", "description": "d", "keywords": ["help"]},
            {"id": "human", "name": "H", "area": "support", "description": "d", "keywords": ["human"]},
        ],
    }
    return {**data, **overrides}


def test_the_shipped_registry_is_realistic():
    registry = default_registry()
    assert len(registry) >= 100
    assert AREAS_REQUIRED <= set(registry.areas)
    assert registry.fallback.id == "mr-blue" and registry.escalation.id == "human-support"
    assert all(agent.keywords for agent in registry)
    languages = {"python-dev", "typescript-dev", "go-dev", "rust-dev", "java-dev", "react-dev"}
    assert languages <= {a.id for a in registry.in_area("code")}
    assert registry.with_capability("visual-edit")


def test_keywords_are_normalized_to_lowercase():
    data = minimal()
    data["agents"][0]["keywords"] = ["  Help ", "FAQ"]
    assert parse_registry(data).get("general").keywords == ("help", "faq")


def test_duplicate_ids_are_rejected():
    data = minimal()
    data["agents"].append(dict(data["agents"][0]))
    with pytest.raises(RegistryError, match="duplicate agent ids: general"):
        parse_registry(data)


@pytest.mark.parametrize("keywords", [[], [""], ["ok", "  "]])
def test_empty_keywords_are_rejected(keywords):
    data = minimal()
    data["agents"][0]["keywords"] = keywords
    with pytest.raises(RegistryError, match="keywords"):
        parse_registry(data)


def test_fallback_and_escalation_must_exist():
    with pytest.raises(RegistryError, match="fallback agent 'nobody'"):
        parse_registry(minimal(fallback="nobody"))
    with pytest.raises(RegistryError, match="escalation agent 'nobody'"):
        parse_registry(minimal(escalation="nobody"))


@pytest.mark.parametrize("bad", [{"id": "Not Kebab"}, {"name": ""}, {"surprise": 1}])
def test_agent_fields_are_validated(bad):
    data = minimal()
    data["agents"][0] = {**data["agents"][0], **bad}
    with pytest.raises(RegistryError):
        parse_registry(data)


def test_load_from_a_path_and_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "agents.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    assert len(load_registry(path)) == 2
    monkeypatch.setenv("SWITCHBOARD_AGENT_REGISTRY", str(path))
    assert len(load_registry()) == 2
    path.write_text("agents: [unclosed")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(path)


def test_default_path_points_at_the_shipped_file():
    assert DEFAULT_REGISTRY_PATH.name == "registry.yaml" and DEFAULT_REGISTRY_PATH.exists()
