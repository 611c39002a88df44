"""Streaming decoders on recorded vendor-shaped streams: deltas, then exactly one `done`."""
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.types import (
    BadRequestError,
    ContextTooLongError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    StreamCutError,
    StreamEvent,
    Usage,
)
from providers.wire import adapter_for


def sse(*chunks, eol="\n"):
    """`data:` frames from JSON-able objects (strings pass through)."""
    frames = [f"data: {c if isinstance(c, str) else json.dumps(c)}{eol}{eol}" for c in chunks]
    return "".join(frames).encode()


def named(*events):
    return "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()


def run(protocol, raw, chunk_size=None, platform="p", model="m"):
    decoder = adapter_for(protocol).stream_decoder(platform=platform, model=model)
    size = chunk_size or len(raw) or 1
    events = [e for i in range(0, len(raw), size) for e in decoder.feed(raw[i : i + size])]
    return events + decoder.close()


def deltas(events):
    return "".join(e.text for e in events if e.kind == "delta")


def assert_one_done_last(events, usage, finish):
    assert [e.kind for e in events].count("done") == 1
    assert events[-1] == StreamEvent("done", usage=usage, finish_reason=finish)


# --- OpenAI protocol --------------------------------------------------------------------------

def _oai(delta=None, finish=None, usage=None, choices=True, **extra):
    body = {"id": "chatcmpl-123", "object": "chat.completion.chunk", "created": 1694268190,
            "model": "gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", **extra}
    body["choices"] = ([{"index": 0, "delta": delta or {}, "logprobs": None,
                         "finish_reason": finish}] if choices else [])
    if usage is not None:
        body["usage"] = usage
    return body


OPENAI_STREAM = sse(
    _oai({"role": "assistant", "content": ""}, usage=None),
    _oai({"content": "Hello"}),
    _oai({"content": " wörld"}),
    _oai({}, finish="stop"),
    _oai(choices=False, usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}),
    "[DONE]",
)

GROQ_STREAM = sse(
    _oai({"role": "assistant", "content": ""}, x_groq={"id": "req_01j"}),
    _oai({"content": "Fast"}),
    _oai({}, finish="length", x_groq={"id": "req_01j", "usage": {
        "queue_time": 0.02, "prompt_tokens": 24, "prompt_time": 0.001, "completion_tokens": 7,
        "completion_time": 0.02, "total_tokens": 31, "total_time": 0.021}}),
    "[DONE]",
)

OPENROUTER_STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    + sse(_oai({"role": "assistant", "content": "Hi"}, provider="Together"))
    + b": OPENROUTER PROCESSING\n\n"
    + sse(_oai({"content": "!"}, finish="stop", provider="Together"),
          _oai(choices=False, usage={"prompt_tokens": 5, "completion_tokens": 2,
                                     "total_tokens": 7, "cost": 0.0000035}),
          "[DONE]")
)


@pytest.mark.parametrize(
    ("raw", "text", "usage", "finish"),
    [(OPENAI_STREAM, "Hello wörld", Usage(9, 3), "stop"),
     (GROQ_STREAM, "Fast", Usage(24, 7), "length"),
     (OPENROUTER_STREAM, "Hi!", Usage(5, 2), "stop")],
    ids=["openai", "groq", "openrouter"],
)
def test_openai_protocol_streams(raw, text, usage, finish):
    for chunk_size in (None, 1, 7):
        events = run("openai", raw, chunk_size)
        assert deltas(events) == text
        assert all(e.text for e in events if e.kind == "delta")  # no empty deltas
        assert_one_done_last(events, usage, finish)


def test_openai_stream_without_done_is_cut():
    raw = OPENAI_STREAM[: OPENAI_STREAM.index(b"data: [DONE]")]
    with pytest.raises(StreamCutError):
        run("openai", raw)


def test_openai_error_mid_stream():
    raw = sse(_oai({"content": "par"}),
              {"error": {"message": "The server is overloaded.", "type": "server_error",
                         "param": None, "code": "server_overloaded"}})
    decoder = adapter_for("openai").stream_decoder(platform="openai", model="gpt-4o")
    with pytest.raises(OverloadedError) as info:
        decoder.feed(raw)
    assert (info.value.platform, info.value.model, info.value.status) == ("openai", "gpt-4o", None)


@pytest.mark.parametrize(
    ("error", "cls"),
    [({"code": "server_error", "message": "Provider disconnected unexpectedly"}, ServerError),
     ({"code": 429, "message": "Rate limit exceeded upstream"}, RateLimitedError),
     ({"code": "context_length_exceeded", "message": "too long"}, ContextTooLongError)],
)
def test_openrouter_finish_reason_error_carries_the_typed_error(error, cls):
    chunk = _oai({"content": ""}, finish="error", error=error, provider="OpenAI")
    with pytest.raises(cls):
        run("openai", sse(_oai({"content": "Hel"}), chunk))


def test_finish_reason_error_without_error_object_is_server_error():
    with pytest.raises(ServerError):
        run("openai", sse(_oai({}, finish="error"), "[DONE]"))


def test_malformed_chunk_is_server_error_not_cut():
    with pytest.raises(ServerError, match="malformed stream chunk") as info:
        run("openai", b'data: {"choices": [\n\n')
    assert not isinstance(info.value, StreamCutError)


# --- Anthropic --------------------------------------------------------------------------------

ANTHROPIC_STREAM = named(
    ("message_start", {"type": "message_start", "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant",
        "content": [], "model": "claude-sonnet-4-5-20250929", "stop_reason": None,
        "stop_sequence": None, "usage": {"input_tokens": 25, "output_tokens": 1}}}),
    ("content_block_start", {"type": "content_block_start", "index": 0,
                             "content_block": {"type": "text", "text": ""}}),
    ("ping", {"type": "ping"}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "Hello"}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 0,
                             "delta": {"type": "text_delta", "text": "!"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}),
    ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": "{\"location\":"}}),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    ("message_delta", {"type": "message_delta",
                       "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                       "usage": {"output_tokens": 15}}),
    ("message_stop", {"type": "message_stop"}),
)


def test_anthropic_stream():
    for chunk_size in (None, 1, 13):
        events = run("anthropic", ANTHROPIC_STREAM, chunk_size)
        assert deltas(events) == "Hello!"
        assert_one_done_last(events, Usage(25, 15), "length")


def test_anthropic_stream_without_message_stop_is_cut():
    raw = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: message_stop")]
    with pytest.raises(StreamCutError):
        run("anthropic", raw)


@pytest.mark.parametrize(
    ("error", "cls"),
    [({"type": "overloaded_error", "message": "Overloaded"}, OverloadedError),
     ({"type": "api_error", "message": "Internal server error"}, ServerError),
     ({"type": "invalid_request_error", "message": "bad"}, BadRequestError)],
)
def test_anthropic_error_event(error, cls):
    raw = ANTHROPIC_STREAM[: ANTHROPIC_STREAM.index(b"event: content_block_stop")]
    raw += named(("error", {"type": "error", "error": error}))
    decoder = adapter_for("anthropic").stream_decoder(platform="anthropic", model="m")
    with pytest.raises(cls) as info:
        decoder.feed(raw)
    assert info.value.message == error["message"]


# --- Gemini -----------------------------------------------------------------------------------

def _gem(text, out, finish=None, thought=False):
    candidate = {"content": {"parts": [{"text": text, **({"thought": True} if thought else {})}],
                             "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": out,
                              "totalTokenCount": 11 + out},
            "modelVersion": "gemini-2.5-flash", "responseId": "abc123"}


GEMINI_STREAM = sse(
    _gem("Considering", 0, thought=True),
    _gem("The quick", 2),
    _gem(" brown fox", 5),
    {**_gem("", 6, finish="STOP"),
     "usageMetadata": {"promptTokenCount": 11, "candidatesTokenCount": 6,
                       "totalTokenCount": 57, "thoughtsTokenCount": 40}},
    eol="\r\n",
)


def test_gemini_stream_ends_at_eof_after_finish_reason():
    for chunk_size in (None, 1, 5):
        events = run("gemini", GEMINI_STREAM, chunk_size)
        assert deltas(events) == "The quick brown fox"
        assert_one_done_last(events, Usage(11, 46, reasoning_tokens=40), "stop")
        assert "".join(e.text for e in events if e.kind == "reasoning") == "Considering"


def test_gemini_done_only_at_close():
    decoder = adapter_for("gemini").stream_decoder(platform="gemini", model="m")
    assert [e.kind for e in decoder.feed(GEMINI_STREAM)] == ["reasoning", "delta", "delta"]
    assert [e.kind for e in decoder.close()] == ["done"]


def test_gemini_stream_without_finish_reason_is_cut():
    raw = sse(_gem("The quick", 2), eol="\r\n")
    with pytest.raises(StreamCutError):
        run("gemini", raw)


def test_gemini_safety_stop_and_error_chunk():
    events = run("gemini", sse(_gem("Partial", 1), _gem("", 1, finish="SAFETY")))
    assert events[-1].finish_reason == "content_filter"
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(OverloadedError):
        run("gemini", sse(_gem("Partial", 1), error))


# --- every protocol: chunking never changes the result ---------------------------------------

STREAMS = [("openai", OPENAI_STREAM), ("openai", GROQ_STREAM), ("openai", OPENROUTER_STREAM),
           ("anthropic", ANTHROPIC_STREAM), ("gemini", GEMINI_STREAM)]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(STREAMS), st.lists(st.floats(min_value=0, max_value=1), max_size=12))
def test_any_split_of_a_recorded_stream_gives_the_same_events(stream, cuts):
    protocol, raw = stream
    points = [0, *sorted(int(c * len(raw)) for c in cuts), len(raw)]
    decoder = adapter_for(protocol).stream_decoder(platform="p", model="m")
    events = [e for a, b in zip(points, points[1:]) for e in decoder.feed(raw[a:b])]
    events += decoder.close()
    expected = run(protocol, raw)
    assert events == expected
