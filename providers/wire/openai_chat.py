"""OpenAI chat-completions bodies ↔ the normalized types, both directions (OpenAI, Groq and
OpenRouter upstream; the gateway's own OpenAI front door).

Faithful pass-through: content parts (text, `image_url` as a URL or a `data:` URL), assistant
`tool_calls` next to text, `tool` turns, `tools` (with `strict`), `tool_choice`,
`parallel_tool_calls`, `response_format` (`json_object`, `json_schema`), `reasoning_effort` and
`seed`. Where another vendor needs something carried between turns that OpenAI's shape has no
field for, the front door carries it in a way OpenAI clients echo back untouched:
- a Gemini call's thought signature rides in the tool call's id (`<id>` + `SIGNATURE_SEP` +
  `<signature>`), and is split off again when the id comes back;
- Anthropic thinking blocks ride in the assistant message's `thinking_blocks` (with
  `reasoning_content` holding their text), the shape LiteLLM clients already know.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

from providers.types import (
    ChatRequest,
    ContentPart,
    ImagePart,
    JsonSchemaFormat,
    Message,
    TextPart,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

SIGNATURE_SEP = "__sig__"
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
ROLE_ALIASES = {"developer": "system"}


# --------------------------------------------------------------------------------------------
# Pieces
# --------------------------------------------------------------------------------------------


def call_id_out(call: ToolCall) -> str:
    """The id a client sees: the signature, if any, rides along."""
    return f"{call.id}{SIGNATURE_SEP}{call.signature}" if call.signature else call.id


def call_id_in(raw: str) -> tuple[str, str | None]:
    """A client's tool call id → (id, signature)."""
    ident, sep, signature = raw.partition(SIGNATURE_SEP)
    return (ident, signature or None) if sep else (raw, None)


def image_url(part: ImagePart) -> str:
    return part.url if part.url is not None else f"data:{part.media_type};base64,{part.data}"


def image_from_url(url: str, detail: str | None = None) -> ImagePart:
    match = _DATA_URL.match(url)
    if match:
        return ImagePart(data=match["data"], media_type=match["type"], detail=detail)
    return ImagePart(url=url, detail=detail)


def part_to_wire(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url: dict[str, Any] = {"url": image_url(part)}
    if part.detail:
        url["detail"] = part.detail
    return {"type": "image_url", "image_url": url}


def tool_call_to_wire(call: ToolCall, *, front_door: bool) -> dict[str, Any]:
    ident = call_id_out(call) if front_door else call.id
    return {"id": ident, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def thinking_to_wire(blocks: tuple[Thinking, ...]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in blocks:
        if b.redacted is not None:
            out.append({"type": "redacted_thinking", "data": b.redacted})
        else:
            out.append({"type": "thinking", "thinking": b.text, "signature": b.signature})
    return out


def thinking_from_wire(blocks: Any) -> tuple[Thinking, ...]:
    if not isinstance(blocks, list):
        return ()
    out = []
    for b in blocks:
        if isinstance(b, dict) and b.get("type") == "redacted_thinking":
            out.append(Thinking(redacted=str(b.get("data") or "")))
        elif isinstance(b, dict):
            out.append(Thinking(text=str(b.get("thinking") or ""), signature=b.get("signature")))
    return tuple(out)


def message_to_wire(m: Message, *, front_door: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"role": m.role}
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
        out["content"] = m.content
        return out
    if m.parts and any(isinstance(p, ImagePart) for p in m.parts):
        out["content"] = [part_to_wire(p) for p in m.parts]
    elif m.role == "assistant" and m.tool_calls and not m.content:
        out["content"] = None
    else:
        out["content"] = m.content
    if m.tool_calls:
        out["tool_calls"] = [tool_call_to_wire(c, front_door=front_door) for c in m.tool_calls]
    if m.name:
        out["name"] = m.name
    if front_door and m.thinking:
        out["thinking_blocks"] = thinking_to_wire(m.thinking)
    return out


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        fn["description"] = tool.description
    fn["parameters"] = dict(tool.parameters)
    if tool.strict is not None:
        fn["strict"] = tool.strict
    return {"type": "function", "function": fn}


def tool_choice_to_wire(choice: ToolChoice) -> Any:
    if choice.mode == "function":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode


def response_format_to_wire(request: ChatRequest) -> dict[str, Any] | None:
    if request.response_format == "json_object":
        return {"type": "json_object"}
    if request.response_format == "json_schema" and request.json_schema is not None:
        spec: dict[str, Any] = {"name": request.json_schema.name, "schema": dict(request.json_schema.schema)}
        if request.json_schema.strict is not None:
            spec["strict"] = request.json_schema.strict
        if request.json_schema.description is not None:
            spec["description"] = request.json_schema.description
        return {"type": "json_schema", "json_schema": spec}
    return None


# --------------------------------------------------------------------------------------------
# Request: normalized → wire
# --------------------------------------------------------------------------------------------


def request_to_wire(request: ChatRequest, model_id: str, *, stream: bool, front_door: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": model_id,
        "messages": [message_to_wire(m, front_door=front_door) for m in request.messages],
        "stream": stream,
    }
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens  # accepted by OpenAI, Groq and OpenRouter
    for name in ("temperature", "top_p", "seed", "reasoning_effort"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if request.logprobs:
        body["logprobs"] = True
        if request.top_logprobs is not None:
            body["top_logprobs"] = request.top_logprobs
    fmt = response_format_to_wire(request)
    if fmt is not None:
        body["response_format"] = fmt
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
    if request.tool_choice is not None:
        body["tool_choice"] = tool_choice_to_wire(request.tool_choice)
    if stream:
        body["stream_options"] = {"include_usage": True}
    return body


# --------------------------------------------------------------------------------------------
# Request: wire → normalized (the front door; input already shape-checked)
# --------------------------------------------------------------------------------------------


def parts_from_wire(content: Any) -> tuple[str, tuple[ContentPart, ...]]:
    """A message's `content` → (its text, its parts when it has more than text)."""
    if content is None:
        return "", ()
    if isinstance(content, str):
        return content, ()
    parts: list[ContentPart] = []
    for p in content:
        if p.get("type") == "image_url":
            image = p.get("image_url") or {}
            parts.append(image_from_url(str(image.get("url") or ""), image.get("detail")))
        elif p.get("type") == "text":
            parts.append(TextPart(str(p.get("text") or "")))
    text = "".join(p.text for p in parts if isinstance(p, TextPart))
    return text, tuple(parts) if any(isinstance(p, ImagePart) for p in parts) else ()


def tool_call_from_wire(raw: Mapping[str, Any]) -> ToolCall:
    fn = raw.get("function") or {}
    ident, signature = call_id_in(str(raw.get("id") or ""))
    return ToolCall(ident, str(fn.get("name") or ""), str(fn.get("arguments") or "{}"), signature)


def message_from_wire(raw: Mapping[str, Any]) -> Message:
    role = ROLE_ALIASES.get(raw["role"], raw["role"])
    text, parts = parts_from_wire(raw.get("content"))
    if role == "tool":
        ident, _ = call_id_in(str(raw.get("tool_call_id") or ""))
        return Message("tool", text, tool_call_id=ident)
    calls = tuple(tool_call_from_wire(c) for c in raw.get("tool_calls") or ())
    return Message(role, text, parts, calls, name=raw.get("name"),
                   thinking=thinking_from_wire(raw.get("thinking_blocks")))


def tool_from_wire(raw: Mapping[str, Any]) -> Tool:
    fn = raw.get("function") or {}
    params = fn.get("parameters")
    return Tool(str(fn["name"]), fn.get("description"),
                params if isinstance(params, dict) else {"type": "object", "properties": {}},
                fn.get("strict"))


def tool_choice_from_wire(raw: Any) -> ToolChoice | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return ToolChoice(raw)  # type: ignore[arg-type]
    return ToolChoice("function", str((raw.get("function") or {}).get("name") or ""))


def json_schema_from_wire(raw: Any) -> JsonSchemaFormat | None:
    if not isinstance(raw, dict) or raw.get("type") != "json_schema":
        return None
    spec = raw.get("json_schema") or {}
    return JsonSchemaFormat(str(spec.get("name") or "response"), spec.get("schema") or {},
                            spec.get("strict"), spec.get("description"))


def request_from_wire(body: Mapping[str, Any], **fields: Any) -> ChatRequest:
    """An OpenAI chat-completions body → the normalized request; `fields` (max_tokens, stop,
    request_id, …) override what the body says."""
    fmt = body.get("response_format")
    options: dict[str, Any] = {
        "messages": tuple(message_from_wire(m) for m in body["messages"]),
        "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "stop": (body["stop"],) if isinstance(body.get("stop"), str) else tuple(body.get("stop") or ()),
        "response_format": fmt.get("type", "text") if isinstance(fmt, dict) else "text",
        "json_schema": json_schema_from_wire(fmt),
        "tools": tuple(tool_from_wire(t) for t in body.get("tools") or ()),
        "tool_choice": tool_choice_from_wire(body.get("tool_choice")),
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "reasoning_effort": body.get("reasoning_effort"),
        "seed": body.get("seed"),
        "logprobs": bool(body.get("logprobs")),
        "top_logprobs": body.get("top_logprobs"),
    }
    options.update(fields)
    return ChatRequest(**options)


# --------------------------------------------------------------------------------------------
# Response pieces: wire → normalized
# --------------------------------------------------------------------------------------------


def usage_from_wire(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt_details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        reasoning_tokens=int(output_details.get("reasoning_tokens") or 0) if isinstance(output_details, dict) else 0,
        cached_tokens=int(prompt_details.get("cached_tokens") or 0) if isinstance(prompt_details, dict) else 0,
    )


def usage_to_wire(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def reasoning_text(obj: Mapping[str, Any]) -> str:
    """Reasoning text as Groq (`reasoning`), OpenRouter (`reasoning`) or others
    (`reasoning_content`) return it."""
    value = obj.get("reasoning") or obj.get("reasoning_content")
    return value if isinstance(value, str) else ""
