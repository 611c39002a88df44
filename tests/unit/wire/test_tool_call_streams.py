"""Property: however a vendor splits a tool call's arguments across stream events, and however
the bytes are cut into network chunks, the decoded `tool_call` events reassemble into exactly
the arguments the same answer has when it is not streamed."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from providers.types import assemble_tool_calls
from providers.wire import adapter_for

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
ARGS = st.dictionaries(st.text(min_size=1, max_size=8), JSON_VALUES, max_size=4)


def cuts(text: str, points: list[int]) -> list[str]:
    marks = sorted({p % (len(text) + 1) for p in points} | {0, len(text)})
    return [text[a:b] for a, b in zip(marks, marks[1:])] or [""]


def sse(events: list[tuple[str | None, dict]]) -> bytes:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + "data: " + json.dumps(data) + "\n\n")
    return "".join(out).encode()


def decode(protocol: str, raw: bytes, chunk: int):
    decoder = adapter_for(protocol).stream_decoder(platform="p", model="m")
    events = []
    for i in range(0, len(raw), chunk):
        events += decoder.feed(raw[i : i + chunk])
    return events + decoder.close()


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(ARGS, min_size=1, max_size=3), points=st.lists(st.integers(0, 400), max_size=6),
       chunk=st.integers(1, 64))
def test_openai_fragments_reassemble_to_the_non_streamed_arguments(calls, points, chunk):
    texts = [json.dumps(a) for a in calls]
    whole = {"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function", "function": {"name": f"f{i}", "arguments": t}}
            for i, t in enumerate(texts)]}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
    events = []
    for i, t in enumerate(texts):
        head = {"index": i, "id": f"call_{i}", "type": "function", "function": {"name": f"f{i}", "arguments": ""}}
        events.append((None, {"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]}))
        for piece in cuts(t, points):
            events.append((None, {"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "function": {"arguments": piece}}]}}]}))
    events.append((None, {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))
    raw = sse(events) + b"data: [DONE]\n\n"
    decoded = decode("openai", raw, chunk)
    expected = adapter_for("openai").parse_response(whole, platform="p", model="m").tool_calls
    assert assemble_tool_calls(decoded) == expected
    assert decoded[-1].finish_reason == "tool_calls"


@settings(max_examples=60, deadline=None)
@given(calls=st.lists(ARGS, min_size=1, max_size=3), points=st.lists(st.integers(0, 400), max_size=6),
       chunk=st.integers(1, 64), with_text=st.booleans())
def test_anthropic_input_json_deltas_reassemble_to_the_non_streamed_input(calls, points, chunk, with_text):
    blocks = ([{"type": "text", "text": "Checking."}] if with_text else []) + [
        {"type": "tool_use", "id": f"toolu_{i}", "name": f"f{i}", "input": a} for i, a in enumerate(calls)]
    whole = {"id": "m", "stop_reason": "tool_use", "content": blocks, "usage": {"input_tokens": 1, "output_tokens": 1}}
    events: list[tuple[str | None, dict]] = [("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 1}}})]
    for index, b in enumerate(blocks):
        start = {**b, "input": {}} if b["type"] == "tool_use" else {"type": "text", "text": ""}
        events.append(("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        if b["type"] == "tool_use":
            for piece in cuts(json.dumps(b["input"]), points):
                events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                       "delta": {"type": "input_json_delta", "partial_json": piece}}))
        else:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index,
                                                   "delta": {"type": "text_delta", "text": b["text"]}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events += [("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 1}}),
               ("message_stop", {"type": "message_stop"})]
    decoded = decode("anthropic", sse(events), chunk)
    expected = adapter_for("anthropic").parse_response(whole, platform="p", model="m").tool_calls
    assert assemble_tool_calls(decoded) == expected
    assert [json.loads(c.arguments) for c in expected] == calls


@settings(max_examples=40, deadline=None)
@given(calls=st.lists(ARGS, min_size=1, max_size=3), chunk=st.integers(1, 64))
def test_gemini_calls_stream_whole_with_their_signatures(calls, chunk):
    parts = [{"functionCall": {"name": f"f{i}", "args": a}, "thoughtSignature": f"sig{i}"} for i, a in enumerate(calls)]
    chunk_body = {"candidates": [{"finishReason": "STOP", "content": {"role": "model", "parts": parts}}],
                  "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}
    decoded = decode("gemini", sse([(None, chunk_body)]), chunk)
    assembled = assemble_tool_calls(decoded)
    assert [(c.name, json.loads(c.arguments), c.signature) for c in assembled] == [
        (f"f{i}", a, f"sig{i}") for i, a in enumerate(calls)]
    assert decoded[-1].finish_reason == "tool_calls"
