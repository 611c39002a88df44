"""The official `anthropic` SDK against the simulator."""
from __future__ import annotations

import anthropic
import pytest

# The SDK warns that its own catalog marks some of these ids deprecated; irrelevant here.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MESSAGES = [{"role": "user", "content": "Review this code"}]


@pytest.fixture
def client(sim):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=sim.url, max_retries=0)


def test_messages_create(client):
    msg = client.messages.create(model="claude-sonnet-4-5", max_tokens=300, messages=MESSAGES,
                                 system="You are terse.")
    assert msg.model == "claude-sonnet-4-5" and msg.stop_reason == "end_turn"
    assert msg.content[0].text.startswith("[sim:anthropic/claude-sonnet-4-5] ")
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0


def test_messages_stream(client):
    full = client.messages.create(model="haiku", max_tokens=300, messages=MESSAGES)
    with client.messages.stream(model="haiku", max_tokens=300, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == full.content[0].text == final.content[0].text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == full.usage.output_tokens
    assert final.usage.input_tokens == full.usage.input_tokens


def test_stream_truncated_by_max_tokens(client):
    with client.messages.stream(model="haiku", max_tokens=4, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens" and final.usage.output_tokens <= 4


def test_models_list_paginates(client):
    page = client.models.list(limit=1)
    assert len(page.data) == 1 and page.has_more
    ids = [m.id for m in client.models.list(limit=1)]  # auto-pagination via after_id
    assert ids == ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"]


def test_error_classes(sim, client):
    bad = anthropic.Anthropic(api_key="invalid-ant-key", base_url=sim.url, max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(model="haiku", max_tokens=5, messages=MESSAGES)
    assert "invalid-ant-key" in str(exc.value)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(model="claude-3-opus-20240229", max_tokens=5, messages=MESSAGES)
    sim.fault(platform="anthropic", model="haiku", status=429, count=1, retry_after_s=3)
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="haiku", max_tokens=5, messages=MESSAGES)
    assert exc.value.response.headers["retry-after"] == "3"
    sim.fault(platform="anthropic", model="haiku", status=500, count=1)
    with pytest.raises(anthropic.InternalServerError):
        client.messages.create(model="haiku", max_tokens=5, messages=MESSAGES)
    sim.fault(platform="anthropic", model="haiku", status=529, count=1)
    with pytest.raises(anthropic.APIStatusError) as exc:
        client.messages.create(model="haiku", max_tokens=5, messages=MESSAGES)
    assert exc.value.status_code == 529 and exc.value.body["error"]["type"] == "overloaded_error"
