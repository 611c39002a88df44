"""The whole chat API through the gateway with the official openai SDK, on a model of each of the
five platforms (the simulator answers each in its own vendor's protocol, and rejects what that
vendor rejects): tool calls, tool-result turns, streamed tool calls, images, json_schema, tool
choice, parallel calls, a complete agent loop, the cache, and what is refused."""
from __future__ import annotations

import json
import socket
import threading

import httpx
import jsonschema
import openai
import pytest

from tests.e2e.conftest import ADMIN_KEY, auth_headers, live_switchboard

pytestmark = pytest.mark.e2e

MODELS = {  # one model per platform
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "groq": "llama-4-scout",
    "gemini": "gemini-2.5-flash",
    "openrouter": "anthropic/claude-sonnet-4.5",
}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}
CLOCK = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
REPORT = {"type": "object", "properties": {"city": {"type": "string"}, "temperature": {"type": "number"},
                                           "sunny": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}}},
          "required": ["city", "temperature", "sunny", "tags"], "additionalProperties": False}
PLATFORMS = list(MODELS)


@pytest.fixture(scope="module")
def app(serve_port, tmp_path_factory):
    with live_switchboard(tmp_path_factory.mktemp("chat-api"), serve_port) as running:
        yield running


@pytest.fixture(scope="module")
def client(app):
    return openai.OpenAI(base_url=f"{app.url}/v1", api_key=ADMIN_KEY, max_retries=0)


def local_weather(location: str, unit: str = "celsius") -> str:
    return f"18 degrees {unit} and sunny in {location}"


def tool_turn(call) -> dict:
    args = json.loads(call.function.arguments)
    return {"role": "tool", "tool_call_id": call.id, "content": local_weather(**args)}


def streamed(client, **kwargs):
    """Text, tool calls (assembled from their deltas) and finish reason of a streamed answer."""
    text, calls, finish = [], {}, None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text.append(choice.delta.content or "")
        for d in choice.delta.tool_calls or ():
            call = calls.setdefault(d.index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or d.id
            call["name"] = call["name"] or (d.function.name if d.function else None)
            call["arguments"] += (d.function.arguments or "") if d.function else ""
        finish = choice.finish_reason or finish
    return "".join(text), [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("platform", PLATFORMS)
def test_tool_call_then_tool_result_turn(client, platform):
    first = client.chat.completions.create(model=MODELS[platform], messages=ASK, tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["location"] == "Paris"
    assert first.model.startswith(platform + "/")
    history = ASK + [choice.message.model_dump(exclude_none=True), tool_turn(call)]
    second = client.chat.completions.create(model=MODELS[platform], messages=history, tools=[WEATHER])
    answer = second.choices[0].message.content
    assert second.choices[0].finish_reason == "stop"
    assert "From the tool results:" in answer and "18 degrees celsius and sunny in Paris" in answer


@pytest.mark.parametrize("platform", PLATFORMS)
def test_streamed_tool_call_assembles_to_the_same_call(client, platform):
    whole = client.chat.completions.create(model=MODELS[platform], messages=ASK, tools=[WEATHER])
    text, calls, finish = streamed(client, model=MODELS[platform], messages=ASK, tools=[WEATHER])
    expected = whole.choices[0].message.tool_calls[0]
    assert finish == "tool_calls" and text == "" and len(calls) == 1
    assert calls[0]["name"] == expected.function.name
    assert json.loads(calls[0]["arguments"]) == json.loads(expected.function.arguments)
    history = ASK + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": calls[0]["id"], "type": "function", "function": {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}}]},
        {"role": "tool", "tool_call_id": calls[0]["id"], "content": "cloudy"}]
    text, calls, finish = streamed(client, model=MODELS[platform], messages=history, tools=[WEATHER])
    assert finish == "stop" and "From the tool results:" in text and "cloudy" in text and calls == []


@pytest.mark.parametrize("platform", PLATFORMS)
def test_an_image_part_reaches_the_upstream_as_an_image(client, platform):
    content = [{"type": "text", "text": "What is in this picture?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    out = client.chat.completions.create(model=MODELS[platform], messages=[{"role": "user", "content": content}])
    assert "I see 1 image (image/png)." in out.choices[0].message.content


@pytest.mark.parametrize("platform", PLATFORMS)
def test_json_schema_answer_parses_and_validates(client, platform):
    fmt = {"type": "json_schema", "json_schema": {"name": "report", "schema": REPORT, "strict": True}}
    out = client.chat.completions.create(model=MODELS[platform], response_format=fmt,
                                         messages=[{"role": "user", "content": "weather report for Lisbon, please"}])
    value = json.loads(out.choices[0].message.content)
    jsonschema.validate(value, REPORT)
    assert value["city"] == "Lisbon"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_tool_choice_none_required_and_named_are_honoured(client, platform):
    model, tools = MODELS[platform], [WEATHER, CLOCK]
    none = client.chat.completions.create(model=model, messages=ASK, tools=tools, tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"
    required = client.chat.completions.create(model=model, tools=tools, tool_choice="required",
                                              messages=[{"role": "user", "content": "Hello there"}])
    assert [c.function.name for c in required.choices[0].message.tool_calls] == ["get_weather"]
    named = client.chat.completions.create(model=model, messages=ASK, tools=tools,
                                           tool_choice={"type": "function", "function": {"name": "get_time"}})
    (call,) = named.choices[0].message.tool_calls
    assert call.function.name == "get_time" and json.loads(call.function.arguments) == {"city": "Paris"}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_parallel_tool_calls(client, platform):
    ask = [{"role": "user", "content": "Use get_weather and get_time for Rome"}]
    both = client.chat.completions.create(model=MODELS[platform], messages=ask, tools=[WEATHER, CLOCK])
    assert [c.function.name for c in both.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in both.choices[0].message.tool_calls}) == 2
    if platform == "gemini":  # Gemini has no switch for parallel calls: refused, not ignored
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model=MODELS[platform], messages=ask, tools=[WEATHER, CLOCK],
                                           parallel_tool_calls=False)
        assert err.value.body["field"] == "parallel_tool_calls"
        return
    one = client.chat.completions.create(model=MODELS[platform], messages=ask, tools=[WEATHER, CLOCK],
                                         parallel_tool_calls=False)
    assert [c.function.name for c in one.choices[0].message.tool_calls] == ["get_weather"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_complete_agent_loop(client, platform):
    """model -> tool call -> local tool -> result -> final answer, as an agent framework runs it."""
    tools = {"get_weather": local_weather}
    messages: list[dict] = [{"role": "system", "content": "You are a weather agent."},
                            {"role": "user", "content": "Should I take an umbrella in Oslo?"}]
    for _ in range(4):
        reply = client.chat.completions.create(model=MODELS[platform], messages=messages, tools=[WEATHER])
        message = reply.choices[0].message
        messages.append(message.model_dump(exclude_none=True))
        if not message.tool_calls:
            break
        for call in message.tool_calls:
            result = tools[call.function.name](**json.loads(call.function.arguments))
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert "18 degrees celsius and sunny in Oslo" in messages[-1]["content"]


def test_cached_tool_call_replays_as_the_same_calls_streamed_or_not(app, client):
    kwargs = dict(model="gpt-4o", messages=ASK, tools=[WEATHER], extra_body={"cache": "exact"})
    first = client.chat.completions.with_raw_response.create(**kwargs)
    again = client.chat.completions.with_raw_response.create(**kwargs)
    assert first.headers["x-switchboard-cache"] == "miss" and again.headers["x-switchboard-cache"] == "hit"
    a, b = first.parse().choices[0].message.tool_calls, again.parse().choices[0].message.tool_calls
    assert [(c.id, c.function.name, c.function.arguments) for c in a] == [(c.id, c.function.name, c.function.arguments) for c in b]
    text, calls, finish = streamed(client, **kwargs)
    assert finish == "tool_calls" and [(c["id"], c["name"], c["arguments"]) for c in calls] == [
        (c.id, c.function.name, c.function.arguments) for c in a]
    other = client.chat.completions.with_raw_response.create(**{**kwargs, "tools": [CLOCK]})
    assert other.headers["x-switchboard-cache"] == "miss"  # the tools are part of the key


def post(app, body: dict) -> httpx.Response:
    """JSON as ASCII, so that a lone surrogate travels as the escape `\\ud800` clients send."""
    headers = {**auth_headers(), "content-type": "application/json"}
    return httpx.post(f"{app.url}/v1/chat/completions", content=json.dumps(body).encode(), headers=headers,
                      trust_env=False, timeout=30)


def test_a_remote_image_url_is_never_fetched_by_the_gateway(app):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port, accepted = listener.getsockname()[1], []

    def watch():
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    stop = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    image = {"type": "image_url", "image_url": {"url": f"http://127.0.0.1:{port}/cat.png"}}
    message = {"role": "user", "content": [{"type": "text", "text": "Describe"}, image]}
    try:
        ok = post(app, {"model": "gpt-4o-mini", "messages": [message]})  # a vendor that fetches URLs itself
        assert ok.status_code == 200 and "I see 1 image (url)." in ok.json()["choices"][0]["message"]["content"]
        refused = post(app, {"model": "gemini-2.5-flash", "messages": [message]})  # needs inline data
        assert refused.status_code == 400 and refused.json()["error"]["field"] == "messages[].content[].image_url.url"
    finally:
        stop.set()
        watcher.join(2)
        listener.close()
    assert accepted == []


@pytest.mark.parametrize("body, status, field", [
    ({"reasoning_effort": "high"}, 400, "reasoning_effort"),  # gpt-4o-mini has no reasoning
    ({"model": "claude-haiku-4-5", "logprobs": True}, 400, "logprobs"),  # Anthropic has none
    ({"top_logprobs": 2}, 400, "top_logprobs"),
    ({"frequency_penalty": 0.5}, 400, "frequency_penalty"),
    ({"no_such_parameter": 1}, 400, "no_such_parameter"),
    ({"stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
    ({"messages": [{"role": "user", "content": "\ud800 lone"}]}, 400, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, 400, "messages[0].content[0].type"),
    ({"messages": [{"role": "tool", "tool_call_id": "call_x", "content": "hi"}]}, 400, "messages[0].tool_call_id"),
    ({"tool_choice": "required"}, 400, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "other"}}}, 400, "tool_choice"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]},
     400, "messages[0].content[0].image_url.url"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + "A" * (7 * 1024 * 1024)}}]}]}, 413, "messages[0].content[0].image_url.url"),
])
def test_what_cannot_be_honoured_is_refused_naming_it(app, body, status, field):
    r = post(app, {"model": "gpt-4o-mini", "messages": ASK, **body})
    assert r.status_code == status, r.text
    if field is not None:
        assert r.json()["error"]["field"] == field


def test_lone_surrogate_in_a_stream_is_a_400_too(app):
    r = post(app, {"model": "claude-haiku-4-5", "stream": True, "messages": [{"role": "user", "content": "x\ud800"}]})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_text"


def test_a_tool_request_falls_back_before_the_first_byte_and_is_booked_at_its_real_usage(app, client):
    fault = {"platform": "openai", "model": "gpt-4o", "status": 503, "count": 2}
    httpx.post(f"{app.simulator.url}/_sim/faults", json=fault, trust_env=False).raise_for_status()
    kwargs = dict(model="switchboard/code_quality", messages=ASK, tools=[WEATHER])
    raw = client.chat.completions.with_raw_response.create(**kwargs)
    reply = raw.parse()
    assert raw.headers["x-switchboard-platform"] == "anthropic" and raw.headers["x-switchboard-fallback"] == "true"
    assert reply.choices[0].message.tool_calls[0].function.name == "get_weather"
    usage = reply.usage  # the ledger's cost is the vendor usage at list prices (claude-sonnet-4-5: $3 / $15)
    assert float(raw.headers["x-switchboard-cost-usd"]) == pytest.approx(
        (usage.prompt_tokens * 3 + usage.completion_tokens * 15) / 1e6, abs=1e-8)
    stream = client.chat.completions.with_raw_response.create(stream=True, **kwargs)
    assert stream.headers["x-switchboard-platform"] == "anthropic" and stream.headers["x-switchboard-fallback"] == "true"
    names = [d.function.name for chunk in stream.parse() if chunk.choices
             for d in chunk.choices[0].delta.tool_calls or () if d.function and d.function.name]
    assert names == ["get_weather"]


@pytest.mark.parametrize("platform", ["anthropic", "gemini"])
def test_reasoning_comes_back_and_thinking_blocks_survive_the_next_turn(client, platform):
    kwargs = dict(model=MODELS[platform], tools=[WEATHER], reasoning_effort="low", max_tokens=4000)
    first = client.chat.completions.create(messages=ASK, **kwargs)
    message = first.choices[0].message
    dumped = message.model_dump(exclude_none=True)
    assert dumped["reasoning_content"] and first.usage.completion_tokens_details.reasoning_tokens >= 0
    if platform == "anthropic":  # the signed thinking block must go back with the tool_use turn
        assert dumped["thinking_blocks"][0]["signature"].startswith("sim-thinking-")
    history = ASK + [dumped, tool_turn(message.tool_calls[0])]
    second = client.chat.completions.create(messages=history, **kwargs)
    assert "18 degrees celsius and sunny in Paris" in second.choices[0].message.content
    if platform == "anthropic":
        forged = {**dumped, "thinking_blocks": [{**dumped["thinking_blocks"][0], "signature": "forged"}]}
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(messages=ASK + [forged, tool_turn(message.tool_calls[0])], **kwargs)


def test_logprobs_pass_through_where_the_vendor_has_them_streamed_and_not(client):
    out = client.chat.completions.create(model="gpt-4o-mini", messages=ASK, logprobs=True, top_logprobs=2)
    choice = out.choices[0]
    assert "".join(t.token for t in choice.logprobs.content) == choice.message.content
    assert all(len(t.top_logprobs) == 2 and t.logprob < 0 for t in choice.logprobs.content)
    chunks = [c for c in client.chat.completions.create(model="gpt-4o-mini", messages=ASK, logprobs=True, stream=True)
              if c.choices and c.choices[0].delta.content]
    assert chunks and all(c.choices[0].logprobs.content for c in chunks)
    assert "".join(t.token for c in chunks for t in c.choices[0].logprobs.content) == choice.message.content
