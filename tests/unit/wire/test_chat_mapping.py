"""The three wire mappings of the whole chat API, both directions: each vendor's documented
request shape maps to the normalized request and back unchanged, a normalized request survives
the trip through each vendor's shape, and answers carry tool calls, reasoning and usage."""
from __future__ import annotations

import copy
import json

import pytest

from providers.types import (
    BadRequestError,
    ChatRequest,
    ImagePart,
    JsonSchemaFormat,
    Message,
    TextPart,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
)
from providers.wire import adapter_for, anthropic_messages, gemini_content, openai_chat  # noqa: F401

WEATHER = {"type": "object", "properties": {"location": {"type": "string", "description": "City"},
                                             "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
           "required": ["location"]}
PNG = "iVBORw0KGgo="

OPENAI_EXAMPLE = {  # the shape of OpenAI's function-calling guide, a tool turn and an image included
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris? See the map."},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "18C and sunny"},
    ],
    "stream": False,
    "max_tokens": 300,
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                                "parameters": WEATHER, "strict": True}}],
    "parallel_tool_calls": False,
    "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    "response_format": {"type": "json_schema", "json_schema": {"name": "report", "schema": WEATHER, "strict": True}},
    "seed": 7,
}

ANTHROPIC_EXAMPLE = {  # the tool-use shape of Anthropic's docs: tool_use, then a user turn of tool_result
    "model": "claude-sonnet-4-5",
    "max_tokens": 2048,
    "system": "You are a weather bot.",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"},
                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call the tool.", "signature": "sig-1"},
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"location": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"}]},
    ],
    "tools": [{"name": "get_weather", "description": "Current weather", "input_schema": WEATHER}],
    "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    "output_config": {"format": {"type": "json_schema", "schema": WEATHER}},
}

GEMINI_EXAMPLE = {  # Gemini's function-calling docs: functionCall (with its signature), functionResponse
    "contents": [
        {"role": "user", "parts": [{"text": "Weather in Paris?"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]},
        {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"location": "Paris"}},
                                     "thoughtSignature": "c2lnbmF0dXJl"}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]},
    ],
    "systemInstruction": {"parts": [{"text": "You are a weather bot."}]},
    "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Current weather", "parameters": WEATHER}]}],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
    "generationConfig": {"maxOutputTokens": 300, "responseMimeType": "application/json", "responseSchema": WEATHER,
                         "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True}},
}


def test_openai_example_maps_to_normalized_and_back_unchanged():
    request = openai_chat.request_from_wire(OPENAI_EXAMPLE, request_id="r")
    assert request.tools[0] == Tool("get_weather", "Current weather", WEATHER, True)
    assert request.messages[1].parts[1] == ImagePart(data=PNG, media_type="image/png", detail="low")
    assert request.messages[2].tool_calls == (ToolCall("call_abc", "get_weather", '{"location": "Paris"}'),)
    assert request.messages[3] == Message("tool", "18C and sunny", tool_call_id="call_abc")
    assert request.tool_choice == ToolChoice("function", "get_weather") and request.parallel_tool_calls is False
    assert request.json_schema == JsonSchemaFormat("report", WEATHER, True)
    assert openai_chat.request_to_wire(request, "gpt-4o", stream=False) == OPENAI_EXAMPLE


def test_anthropic_example_maps_to_normalized_and_back_unchanged():
    request = anthropic_messages.request_from_wire(ANTHROPIC_EXAMPLE, request_id="r")
    assert [m.role for m in request.messages] == ["system", "user", "assistant", "tool"]
    assert request.messages[2].thinking == (Thinking("I should call the tool.", "sig-1"),)
    assert request.messages[2].tool_calls[0].name == "get_weather"
    assert request.parallel_tool_calls is False
    assert anthropic_messages.request_to_wire(request, "claude-sonnet-4-5", stream=False) == ANTHROPIC_EXAMPLE


def test_gemini_example_maps_to_normalized_and_back_unchanged():
    request = gemini_content.request_from_wire(GEMINI_EXAMPLE, request_id="r")
    call = request.messages[2].tool_calls[0]
    assert call.signature == "c2lnbmF0dXJl" and json.loads(call.arguments) == {"location": "Paris"}
    assert request.messages[3].role == "tool" and request.messages[3].tool_call_id == call.id
    assert request.tool_choice == ToolChoice("function", "get_weather")
    assert gemini_content.request_to_wire(request) == GEMINI_EXAMPLE


def agent_request(**extra) -> ChatRequest:
    """Everything at once, as an agent framework sends it mid-loop."""
    return ChatRequest(
        messages=(
            Message("system", "Be brief."),
            Message("user", "Paris and Rome?", (TextPart("Paris and Rome?"), ImagePart(data=PNG, media_type="image/png"))),
            Message("assistant", "Checking both.", tool_calls=(
                ToolCall("call_1", "get_weather", '{"location": "Paris"}'),
                ToolCall("call_2", "get_weather", '{"location": "Rome"}'))),
            Message("tool", "18C", tool_call_id="call_1"),
            Message("tool", "24C", tool_call_id="call_2"),
        ),
        max_tokens=2048,
        tools=(Tool("get_weather", "Current weather", WEATHER),),
        tool_choice=ToolChoice("required"),
        request_id="r",
        **extra,
    )


def test_normalized_request_survives_openai_and_anthropic():
    request = agent_request(parallel_tool_calls=False)
    body = openai_chat.request_to_wire(request, "m", stream=False)
    assert openai_chat.request_from_wire(body, request_id="r") == request
    body = anthropic_messages.request_to_wire(request, "m", stream=False)
    assert anthropic_messages.request_from_wire(body, request_id="r") == request


def test_consecutive_tool_turns_become_one_user_turn_of_tool_results():
    body = anthropic_messages.request_to_wire(agent_request(), "m", stream=False)
    assert [t["role"] for t in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][2]["content"]] == ["tool_result", "tool_result"]
    assert body["tool_choice"] == {"type": "any"}
    assert "system" not in [t["role"] for t in body["messages"]] and body["system"] == "Be brief."


def test_gemini_names_each_function_response_after_the_call_it_answers():
    body = gemini_content.request_to_wire(agent_request())
    model_turn, answers = body["contents"][1], body["contents"][2]
    assert [p["functionCall"]["args"]["location"] for p in model_turn["parts"] if "functionCall" in p] == ["Paris", "Rome"]
    assert all(p["thoughtSignature"] == gemini_content.DUMMY_SIGNATURE for p in model_turn["parts"] if "functionCall" in p)
    assert [p["functionResponse"] for p in answers["parts"]] == [
        {"name": "get_weather", "response": {"result": "18C"}}, {"name": "get_weather", "response": {"result": "24C"}}]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_gemini_refuses_what_it_cannot_carry():
    with pytest.raises(BadRequestError, match="inline only"):
        gemini_content.request_to_wire(ChatRequest((Message("user", "x", (ImagePart(url="https://e.x/a.png"),)),)))
    with pytest.raises(BadRequestError, match="answers no earlier tool call"):
        gemini_content.request_to_wire(ChatRequest((Message("tool", "x", tool_call_id="nope"),)))


def test_json_schema_becomes_geminis_schema_subset():
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
              "properties": {"when": {"type": ["string", "null"]}, "kind": {"const": "a"}, "item": {"$ref": "#/$defs/Item"},
                             "either": {"anyOf": [{"type": "integer"}, {"type": "null"}]}},
              "required": ["kind"], "$defs": {"Item": {"type": "object", "properties": {"n": {"type": "integer"}}}}}
    assert gemini_content.gemini_schema(schema) == {
        "type": "object", "required": ["kind"],
        "properties": {"when": {"type": "string", "nullable": True}, "kind": {"type": "string", "enum": ["a"]},
                       "item": {"type": "object", "properties": {"n": {"type": "integer"}}},
                       "either": {"type": "integer", "nullable": True}}}
    recursive = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    for cyclic in (recursive, {"$ref": "#/$defs/N", "$defs": {"N": {"properties": {"n": {"$ref": "#/$defs/N"}}}}}):
        with pytest.raises(BadRequestError, match="recursive"):
            gemini_content.gemini_schema(cyclic)


def test_anthropic_thinking_budget_fits_under_max_tokens_or_is_refused():
    request = agent_request(reasoning_effort="high")
    body = anthropic_messages.request_to_wire(request, "m", stream=False)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2047}
    with pytest.raises(BadRequestError, match="max_tokens"):
        anthropic_messages.request_to_wire(ChatRequest((Message("user", "x"),), max_tokens=500, reasoning_effort="low"),
                                           "m", stream=False)


def test_front_door_carries_gemini_signatures_in_the_call_id_and_thinking_blocks_in_the_message():
    call = ToolCall("call_1", "f", "{}", signature="c2ln")
    wired = openai_chat.message_to_wire(Message("assistant", "", tool_calls=(call,), thinking=(Thinking("hm", "s"),)),
                                        front_door=True)
    assert wired["tool_calls"][0]["id"] == "call_1" + openai_chat.SIGNATURE_SEP + "c2ln"
    assert wired["thinking_blocks"] == [{"type": "thinking", "thinking": "hm", "signature": "s"}]
    back = openai_chat.message_from_wire(copy.deepcopy(wired))
    assert back.tool_calls == (call,) and back.thinking == (Thinking("hm", "s"),)
    tool = openai_chat.message_from_wire({"role": "tool", "tool_call_id": wired["tool_calls"][0]["id"], "content": "ok"})
    assert tool.tool_call_id == "call_1"
    upstream = openai_chat.message_to_wire(back)  # what an OpenAI upstream gets: the plain id
    assert upstream["tool_calls"][0]["id"] == "call_1" and "thinking_blocks" not in upstream


def test_answers_carry_tool_calls_reasoning_and_usage_details():
    openai_body = {"id": "x", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": None, "reasoning": "think",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 3}}}
    r = adapter_for("openai").parse_response(openai_body, platform="openai", model="m")
    assert r.tool_calls == (ToolCall("c1", "f", '{"a":1}'),) and r.finish_reason == "tool_calls"
    assert r.reasoning == "think" and (r.usage.cached_tokens, r.usage.reasoning_tokens) == (4, 3)
    anthropic_body = {"id": "m", "stop_reason": "tool_use", "content": [
        {"type": "thinking", "thinking": "t", "signature": "s"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 20, "cache_creation_input_tokens": 2, "output_tokens": 9}}
    r = adapter_for("anthropic").parse_response(anthropic_body, platform="anthropic", model="m")
    assert r.tool_calls == (ToolCall("toolu_1", "f", '{"a": 1}'),) and r.finish_reason == "tool_calls"
    assert r.thinking == (Thinking("t", "s"),) and (r.usage.input_tokens, r.usage.cached_tokens) == (27, 20)
    gemini_body = {"candidates": [{"finishReason": "STOP", "content": {"role": "model", "parts": [
        {"text": "hmm", "thought": True},
        {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "sig"}]}}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "thoughtsTokenCount": 2}}
    r = adapter_for("gemini").parse_response(gemini_body, platform="gemini", model="m")
    assert r.finish_reason == "tool_calls" and r.reasoning == "hmm" and r.text == ""
    assert (r.tool_calls[0].name, r.tool_calls[0].signature, json.loads(r.tool_calls[0].arguments)) == ("f", "sig", {"a": 1})
    assert r.tool_calls[0].id.startswith("call_") and r.usage.reasoning_tokens == 2
