"""The official `google-genai` SDK against the simulator."""
from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types


def _client(url: str, key: str = "gm-test", api_version: str | None = None) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=url, api_version=api_version, retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def client(sim):
    return _client(sim.url)


def test_generate_content(client):
    out = client.models.generate_content(model="gemini-2.5-flash", contents="Summarise this")
    assert out.text.startswith("[sim:gemini/gemini-2.5-flash] ")
    assert out.candidates[0].finish_reason == types.FinishReason.STOP
    meta = out.usage_metadata
    assert meta.total_token_count == meta.prompt_token_count + meta.candidates_token_count


def test_generate_content_json_mode(client):
    out = client.models.generate_content(
        model="flash-lite", contents="List the Python files?",
        config=types.GenerateContentConfig(response_mime_type="application/json"))
    assert out.parsed is None or isinstance(out.parsed, dict)
    import json

    assert set(json.loads(out.text)) == {"intent", "entities", "type", "keywords"}


def test_generate_content_stream(client):
    full = client.models.generate_content(model="gemini-2.5-pro", contents="Stream me")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="Stream me"))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == full.text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    assert chunks[-1].usage_metadata.candidates_token_count == full.usage_metadata.candidates_token_count


def test_v1beta_paths(sim):
    client = _client(sim.url, api_version="v1beta")
    out = client.models.generate_content(model="flash", contents="Beta")
    chunks = list(client.models.generate_content_stream(model="flash", contents="Beta"))
    assert "".join(c.text or "" for c in chunks) == out.text
    assert [m.name for m in client.models.list()][0] == "models/gemini-2.5-flash-lite"


def test_models_list(client):
    names = [m.name for m in client.models.list(config={"page_size": 2})]
    assert names == ["models/gemini-2.5-flash-lite", "models/gemini-2.5-flash", "models/gemini-2.5-pro"]


def test_error_classes(sim, client):
    bad = _client(sim.url, "invalid-gm-key")  # keep a reference: the SDK closes on collection
    with pytest.raises(errors.ClientError) as exc:
        bad.models.generate_content(model="flash", contents="x")
    assert exc.value.code == 400 and "invalid-gm-key" in exc.value.message
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-1.5-flash", contents="x")
    assert exc.value.code == 404 and exc.value.status == "NOT_FOUND"
    sim.fault(platform="gemini", model="flash", status=429, count=1, retry_after_s=7)
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="flash", contents="x")
    assert exc.value.code == 429 and exc.value.status == "RESOURCE_EXHAUSTED"
    retry = [d for d in exc.value.details["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry[0]["retryDelay"] == "7s"
    sim.fault(platform="gemini", model="flash", status=500, count=1)
    with pytest.raises(errors.ServerError) as exc:
        client.models.generate_content(model="flash", contents="x")
    assert exc.value.code == 500
