"""The official `groq` SDK against the simulator."""
from __future__ import annotations

import groq
import pytest

MESSAGES = [{"role": "user", "content": "Say something fast"}]


@pytest.fixture
def client(sim):
    return groq.Groq(api_key="gsk-test", base_url=sim.url, max_retries=0)


def test_chat_completion(client):
    out = client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MESSAGES)
    assert out.choices[0].message.content.startswith("[sim:groq/llama-3.3-70b-versatile] ")
    assert out.usage.prompt_tokens > 0


def test_streaming_carries_x_groq_usage(client):
    chunks = list(client.chat.completions.create(model="llama-8b", messages=MESSAGES, stream=True))
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert last.x_groq.usage.completion_tokens > 0
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_models_list(client):
    assert {m.id for m in client.models.list().data} == {"llama-3.3-70b-versatile", "llama-3.1-8b-instant",
                                                         "meta-llama/llama-4-scout-17b-16e-instruct"}


def test_error_classes(sim, client):
    bad = groq.Groq(api_key="invalid-gsk", base_url=sim.url, max_retries=0)
    with pytest.raises(groq.AuthenticationError):
        bad.chat.completions.create(model="llama-8b", messages=MESSAGES)
    with pytest.raises(groq.NotFoundError):
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    with pytest.raises(groq.BadRequestError) as exc:
        client.chat.completions.create(model="llama-3.1-70b-versatile", messages=MESSAGES)
    assert "decommissioned" in str(exc.value)
    sim.fault(platform="groq", model="llama-8b", status=429, count=1)
    with pytest.raises(groq.RateLimitError):
        client.chat.completions.create(model="llama-8b", messages=MESSAGES)
    sim.fault(platform="groq", model="llama-8b", status=503, count=1)
    with pytest.raises(groq.InternalServerError):
        client.chat.completions.create(model="llama-8b", messages=MESSAGES)
