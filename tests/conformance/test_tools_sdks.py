"""The official SDKs (openai, anthropic, google-genai, groq) parse every answer of the simulator's
chat API: tool calls, parallel calls, tool-result turns, images and structured outputs, streamed
and not; and the simulator refuses what those vendors refuse."""
from __future__ import annotations

import json

import anthropic
import groq
import jsonschema
import openai
import pytest
from google import genai
from google.genai import errors, types

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SCHEMA = {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
          "required": ["location"]}
OAI_TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": SCHEMA}},
             {"type": "function", "function": {"name": "get_time", "parameters": SCHEMA}}]
ASK = "please use get_weather and get_time for Paris"
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


@pytest.fixture
def oai(sim):
    return openai.OpenAI(api_key="sk-test", base_url=f"{sim.url}/v1", max_retries=0)


@pytest.fixture
def claude(sim):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=sim.url, max_retries=0)


@pytest.fixture
def gemini(sim):
    return genai.Client(api_key="gm-test", http_options=types.HttpOptions(
        base_url=sim.url, retry_options=types.HttpRetryOptions(attempts=1)))


# -- openai / groq ------------------------------------------------------------------------------


@pytest.mark.parametrize("sdk", ["openai", "groq"])
def test_openai_family_parallel_tool_calls_and_the_result_turn(sim, sdk):
    client = (openai.OpenAI(api_key="sk-test", base_url=f"{sim.url}/v1", max_retries=0) if sdk == "openai"
              else groq.Groq(api_key="gsk-test", base_url=sim.url, max_retries=0))
    model = "gpt-4o" if sdk == "openai" else "llama-3.3-70b-versatile"
    first = client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK}], tools=OAI_TOOLS)
    calls = first.choices[0].message.tool_calls
    assert first.choices[0].finish_reason == "tool_calls" and [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"location": "Paris", "days": 1}
    history = [{"role": "user", "content": ASK}, first.choices[0].message.model_dump(exclude_none=True)]
    history += [{"role": "tool", "tool_call_id": c.id, "content": f"result {i}"} for i, c in enumerate(calls)]
    second = client.chat.completions.create(model=model, messages=history, tools=OAI_TOOLS)
    assert second.choices[0].message.content.endswith("From the tool results: result 0; result 1")
    chunks = list(client.chat.completions.create(model=model, messages=[{"role": "user", "content": ASK}],
                                                 tools=OAI_TOOLS, stream=True))
    args: dict[int, str] = {}
    for chunk in chunks:
        for d in (chunk.choices[0].delta.tool_calls or ()) if chunk.choices else ():
            args[d.index] = args.get(d.index, "") + (d.function.arguments or "")
    assert [args[i] for i in sorted(args)] == [c.function.arguments for c in calls]


def test_openai_rejects_a_tool_turn_answering_no_call_and_an_unanswered_call(oai):
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "tool", "tool_call_id": "x", "content": "r"}])
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError, match="did not have response messages: call_1"):
        oai.chat.completions.create(model="gpt-4o", messages=[
            {"role": "user", "content": "x"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "user", "content": "and?"}])


def test_openai_image_and_json_schema_streamed_and_not(oai):
    image = [{"type": "text", "text": "what is this"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    out = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": image}])
    assert "I see 1 image (image/png)." in out.choices[0].message.content
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}
    parsed = oai.chat.completions.create(model="gpt-4o", response_format=fmt,
                                         messages=[{"role": "user", "content": "forecast for Oslo"}])
    jsonschema.validate(json.loads(parsed.choices[0].message.content), SCHEMA)
    text = "".join(c.choices[0].delta.content or "" for c in oai.chat.completions.create(
        model="gpt-4o", response_format=fmt, stream=True, messages=[{"role": "user", "content": "forecast for Oslo"}])
        if c.choices)
    assert json.loads(text) == json.loads(parsed.choices[0].message.content)


# -- anthropic --------------------------------------------------------------------------------


CLAUDE_TOOLS = [{"name": "get_weather", "input_schema": SCHEMA}, {"name": "get_time", "input_schema": SCHEMA}]


def test_anthropic_tool_use_result_turn_and_stream(claude):
    ask = [{"role": "user", "content": ASK}]
    msg = claude.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=ask, tools=CLAUDE_TOOLS)
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert msg.stop_reason == "tool_use" and [u.name for u in uses] == ["get_weather", "get_time"]
    assert uses[0].input == {"location": "Paris", "days": 1}
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=500, messages=ask, tools=CLAUDE_TOOLS) as s:
        final = s.get_final_message()
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == [(u.name, u.input) for u in uses]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"r{i}"} for i, u in enumerate(uses)]
    history = ask + [{"role": "assistant", "content": [u.model_dump() for u in uses]}, {"role": "user", "content": results}]
    done = claude.messages.create(model="claude-sonnet-4-5", max_tokens=500, messages=history, tools=CLAUDE_TOOLS)
    assert done.stop_reason == "end_turn" and done.content[0].text.endswith("From the tool results: r0; r1")


def test_anthropic_parallel_off_forced_tool_image_and_structured_output(claude):
    one = claude.messages.create(model="claude-sonnet-4-5", max_tokens=500, tools=CLAUDE_TOOLS,
                                 messages=[{"role": "user", "content": ASK}],
                                 tool_choice={"type": "tool", "name": "get_time", "disable_parallel_tool_use": True})
    assert [b.name for b in one.content if b.type == "tool_use"] == ["get_time"]
    image = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
             {"type": "text", "text": "what is this"}]
    seen = claude.messages.create(model="haiku", max_tokens=300, messages=[{"role": "user", "content": image}])
    assert "I see 1 image (image/png)." in seen.content[0].text
    shaped = claude.messages.create(model="claude-sonnet-4-5", max_tokens=300, messages=[{"role": "user", "content": "x"}],
                                    output_config={"format": {"type": "json_schema", "schema": SCHEMA}})
    jsonschema.validate(json.loads(shaped.content[0].text), SCHEMA)


def test_anthropic_thinking_blocks_come_back_with_their_signature(claude):
    ask = [{"role": "user", "content": ASK}]
    msg = claude.messages.create(model="claude-sonnet-4-5", max_tokens=4000, messages=ask, tools=CLAUDE_TOOLS,
                                 thinking={"type": "enabled", "budget_tokens": 1024})
    assert msg.content[0].type == "thinking" and msg.content[0].signature
    uses = [b for b in msg.content if b.type == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "ok"} for u in uses]
    history = ask + [{"role": "assistant", "content": [b.model_dump() for b in msg.content]},
                     {"role": "user", "content": results}]
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=4000, messages=history, tools=CLAUDE_TOOLS,
                           thinking={"type": "enabled", "budget_tokens": 1024})
    tampered = [{**history[1], "content": [{**history[1]["content"][0], "signature": "forged"}, *history[1]["content"][1:]]}]
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=4000, messages=ask + tampered + history[2:],
                               tools=CLAUDE_TOOLS, thinking={"type": "enabled", "budget_tokens": 1024})


def test_anthropic_rejects_a_tool_role_and_a_stray_tool_result(claude):
    with pytest.raises(anthropic.BadRequestError, match="role"):
        claude.messages.create(model="haiku", max_tokens=100, messages=[{"role": "tool", "content": "x"}])
    stray = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}]
    with pytest.raises(anthropic.BadRequestError, match="tool_use_id"):
        claude.messages.create(model="haiku", max_tokens=100, messages=stray)


# -- gemini ------------------------------------------------------------------------------------


GEMINI_TOOLS = [types.Tool(function_declarations=[
    types.FunctionDeclaration(name="get_weather", parameters_json_schema=None, parameters=types.Schema(
        type="OBJECT", properties={"location": types.Schema(type="STRING"), "days": types.Schema(type="INTEGER")},
        required=["location"])),
    types.FunctionDeclaration(name="get_time", parameters=types.Schema(
        type="OBJECT", properties={"location": types.Schema(type="STRING")}))])]


def test_gemini_function_calls_with_signatures_and_the_response_turn(gemini):
    config = types.GenerateContentConfig(tools=GEMINI_TOOLS,
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    out = gemini.models.generate_content(model="gemini-2.5-flash", contents=ASK, config=config)
    calls = out.function_calls
    assert [c.name for c in calls] == ["get_weather", "get_time"] and calls[0].args == {"location": "Paris", "days": 1}
    parts = out.candidates[0].content.parts
    assert all(p.thought_signature for p in parts if p.function_call)
    stream_calls = [c for chunk in gemini.models.generate_content_stream(model="gemini-2.5-flash", contents=ASK,
                                                                         config=config) for c in chunk.function_calls or ()]
    assert [(c.name, c.args) for c in stream_calls] == [(c.name, c.args) for c in calls]
    answers = types.Content(role="user", parts=[types.Part.from_function_response(name=c.name, response={"v": i})
                                                for i, c in enumerate(calls)])
    history = [types.Content(role="user", parts=[types.Part(text=ASK)]), out.candidates[0].content, answers]
    done = gemini.models.generate_content(model="gemini-2.5-flash", contents=history, config=config)
    assert done.text.endswith('From the tool results: {"v": 0}; {"v": 1}')
    unsigned = types.Content(role="model", parts=[types.Part(function_call=c) for c in calls])
    with pytest.raises(errors.ClientError, match="thought_signature"):
        gemini.models.generate_content(model="gemini-2.5-flash", contents=[history[0], unsigned, answers], config=config)


def test_gemini_image_and_response_schema_and_misplaced_parts(gemini):
    image = types.Part.from_bytes(data=__import__("base64").b64decode(PNG), mime_type="image/png")
    out = gemini.models.generate_content(model="gemini-2.5-flash", contents=[image, "what is this"])
    assert "I see 1 image (image/png)." in out.text
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=types.Schema(
        type="OBJECT", properties={"location": types.Schema(type="STRING")}, required=["location"]))
    shaped = gemini.models.generate_content(model="gemini-2.5-flash", contents="forecast for Oslo", config=config)
    assert json.loads(shaped.text) == {"location": "Oslo"}
    wrong = types.Content(role="user", parts=[types.Part(function_call=types.FunctionCall(name="get_weather", args={}))])
    with pytest.raises(errors.ClientError, match="role 'model'"):
        gemini.models.generate_content(model="gemini-2.5-flash", contents=[wrong])


# -- images and structured outputs, streamed ---------------------------------------------------


def test_groq_image_and_json_schema_streamed_and_not(sim):
    client = groq.Groq(api_key="gsk-test", base_url=sim.url, max_retries=0)
    image = [{"type": "text", "text": "what is this"},
             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    kwargs = dict(model="llama-4-scout", messages=[{"role": "user", "content": image}])
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(stream=True, **kwargs)
                   if c.choices)
    assert text == whole and "I see 1 image (image/png)." in text
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": SCHEMA}}
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="llama-4-scout", response_format=fmt, stream=True,
        messages=[{"role": "user", "content": "forecast for Oslo"}]) if c.choices)
    jsonschema.validate(json.loads(streamed), SCHEMA)


def test_anthropic_image_and_structured_output_streamed(claude):
    image = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
             {"type": "text", "text": "what is this"}]
    with claude.messages.stream(model="haiku", max_tokens=300, messages=[{"role": "user", "content": image}]) as s:
        assert "I see 1 image (image/png)." in "".join(s.text_stream)
    with claude.messages.stream(model="claude-sonnet-4-5", max_tokens=300, messages=[{"role": "user", "content": "x"}],
                                output_config={"format": {"type": "json_schema", "schema": SCHEMA}}) as s:
        jsonschema.validate(json.loads("".join(s.text_stream)), SCHEMA)


def test_gemini_image_and_response_schema_streamed(gemini):
    image = types.Part.from_bytes(data=__import__("base64").b64decode(PNG), mime_type="image/png")
    text = "".join(c.text or "" for c in gemini.models.generate_content_stream(model="gemini-2.5-flash",
                                                                               contents=[image, "what is this"]))
    assert "I see 1 image (image/png)." in text
    config = types.GenerateContentConfig(response_mime_type="application/json", response_schema=types.Schema(
        type="OBJECT", properties={"location": types.Schema(type="STRING")}, required=["location"]))
    text = "".join(c.text or "" for c in gemini.models.generate_content_stream(
        model="gemini-2.5-flash", contents="forecast for Oslo", config=config))
    assert json.loads(text) == {"location": "Oslo"}
