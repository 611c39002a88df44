"""The official `openai` SDK (OpenAI and OpenRouter base URLs) against the simulator."""
from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say something"}]


@pytest.fixture
def oai(sim):
    return openai.OpenAI(api_key="sk-test", base_url=f"{sim.url}/v1", max_retries=0)


@pytest.fixture
def router(sim):
    return openai.OpenAI(api_key="or-test", base_url=f"{sim.url}/api/v1", max_retries=0)


def test_chat_completion(oai):
    out = oai.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=200)
    assert out.model == "gpt-4o"
    assert out.choices[0].message.content.startswith("[sim:openai/gpt-4o] ")
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens


def test_streaming_with_include_usage(oai):
    full = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                         stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_models_list(oai):
    ids = {m.id for m in oai.models.list()}
    assert {"gpt-4o", "gpt-4o-mini"} <= ids


def test_openrouter_stream_ignores_processing_comments_and_has_usage(router):
    stream = router.chat.completions.create(model="meta-llama/llama-3-70b", messages=MESSAGES,
                                            stream=True)
    chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert {m.id for m in router.models.list()} >= {"meta-llama/llama-3-70b-instruct"}


def test_error_classes(sim, oai):
    bad = openai.OpenAI(api_key="invalid-key-42", base_url=f"{sim.url}/v1", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "invalid-key-42" in exc.value.message
    with pytest.raises(openai.NotFoundError) as exc:
        oai.chat.completions.create(model="gpt-imaginary", messages=MESSAGES)
    assert exc.value.code == "model_not_found"
    sim.fault(platform="openai", model="gpt-4o", status=429, count=1, retry_after_s=2)
    with pytest.raises(openai.RateLimitError) as exc:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.response.headers["retry-after"] == "2"
    sim.fault(platform="openai", model="gpt-4o", status=429, error_code="insufficient_quota", count=1)
    with pytest.raises(openai.RateLimitError) as exc:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.code == "insufficient_quota"
    sim.fault(platform="openai", model="gpt-4o", status=500, count=1)
    with pytest.raises(openai.InternalServerError):
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    sim.fault(platform="openai", model="gpt-4o", status=400, count=1)
    with pytest.raises(openai.BadRequestError) as exc:
        oai.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert exc.value.code == "context_length_exceeded"


def test_openrouter_payment_required(sim, router):
    sim.fault(platform="openrouter", status=402, count=1)
    with pytest.raises(openai.APIStatusError) as exc:
        router.chat.completions.create(model="meta-llama/llama-3-70b", messages=MESSAGES)
    assert exc.value.status_code == 402 and "credits" in exc.value.message
