"""Anthropic Messages bodies ↔ the normalized types, both directions.

- system turns → the top-level `system`; a `tool` turn → a `tool_result` block, consecutive
  tool turns (and a user turn after them) → one user turn, tool results first;
- assistant tool calls → `tool_use` blocks (input as an object), after the turn's thinking
  blocks (sent back unchanged: the API requires them with tool use) and its text;
- images → `image` blocks with a base64 or url source;
- tools → `input_schema`; tool choice auto/required/named/none → auto/any/tool/none, parallel
  off → `disable_parallel_tool_use`;
- json_schema → `output_config.format` (structured outputs); json_object → an instruction in the
  system prompt (the API has no JSON mode);
- reasoning → `thinking` with a token budget (an explicit one, or one per effort level), which
  must stay below max_tokens and at or above the API's minimum.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from providers.types import (
    BadRequestError,
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

DEFAULT_MAX_TOKENS = 1024
MIN_THINKING_BUDGET = 1024
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}
JSON_INSTRUCTION = "Respond with a single JSON object and nothing else: no prose, no code fences."
CHOICE_TYPES = {"auto": "auto", "required": "any", "function": "tool", "none": "none"}
CHOICE_MODES = {v: k for k, v in CHOICE_TYPES.items()}


# --------------------------------------------------------------------------------------------
# normalized → wire
# --------------------------------------------------------------------------------------------


def system_text(request: ChatRequest) -> str | None:
    """The top-level system prompt, with the JSON instruction appended in JSON mode."""
    system = request.system_prompt
    if request.response_format == "json_object":
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    return system


def part_to_wire(part: ContentPart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.is_inline:
        return {"type": "image", "source": {"type": "base64", "media_type": part.media_type, "data": part.data}}
    return {"type": "image", "source": {"type": "url", "url": part.url}}


def arguments_object(call: ToolCall) -> dict[str, Any]:
    try:
        value = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise BadRequestError(f"tool call {call.id!r}: arguments must be a JSON object", status=400)
    return value


def assistant_blocks(m: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for t in m.thinking:
        if t.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": t.redacted})
        else:
            blocks.append({"type": "thinking", "thinking": t.text, "signature": t.signature})
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks += [{"type": "tool_use", "id": c.id, "name": c.name, "input": arguments_object(c)} for c in m.tool_calls]
    return blocks


def user_blocks(m: Message) -> list[dict[str, Any]]:
    if m.role == "tool":
        return [{"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}]
    return [part_to_wire(p) for p in m.content_parts]


def messages_to_wire(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Turns in Anthropic's two roles; consecutive turns of one role merge into one."""
    out: list[dict[str, Any]] = []
    for m in conversation:
        role = "assistant" if m.role == "assistant" else "user"
        blocks = assistant_blocks(m) if role == "assistant" else user_blocks(m)
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    for turn in out:  # the plain shape for a lone text block, as clients write it
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return out


def tool_to_wire(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        out["description"] = tool.description
    out["input_schema"] = dict(tool.parameters)
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def tool_choice_to_wire(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None and request.parallel_tool_calls is not False:
        return None
    out: dict[str, Any] = {"type": CHOICE_TYPES[choice.mode if choice else "auto"]}
    if choice is not None and choice.mode == "function":
        out["name"] = choice.name
    if request.parallel_tool_calls is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def thinking_budget(request: ChatRequest, max_tokens: int) -> int | None:
    if not request.wants_reasoning:
        return None
    budget = request.thinking_budget or EFFORT_BUDGETS[request.reasoning_effort or "medium"]
    budget = min(budget, max_tokens - 1)
    if budget < MIN_THINKING_BUDGET:
        raise BadRequestError(f"max_tokens must be above {MIN_THINKING_BUDGET} for reasoning on Anthropic "
                              f"(its minimum thinking budget); got max_tokens={max_tokens}", status=400)
    return budget


def request_to_wire(request: ChatRequest, model_id: str, *, stream: bool) -> dict[str, Any]:
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    body: dict[str, Any] = {"model": model_id, "max_tokens": max_tokens,
                            "messages": messages_to_wire(request.conversation)}
    system = system_text(request)
    if system:
        body["system"] = system
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)  # Anthropic's range is 0..1
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.tools:
        body["tools"] = [tool_to_wire(t) for t in request.tools]
    choice = tool_choice_to_wire(request)
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format == "json_schema" and request.json_schema is not None:
        body["output_config"] = {"format": {"type": "json_schema", "schema": dict(request.json_schema.schema)}}
    budget = thinking_budget(request, max_tokens)
    if budget is not None:
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if stream:
        body["stream"] = True
    return body


# --------------------------------------------------------------------------------------------
# wire → normalized (for a Messages front door, and to read answers)
# --------------------------------------------------------------------------------------------


def blocks_of(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or () if isinstance(b, dict)]


def part_from_wire(block: Mapping[str, Any]) -> ContentPart:
    if block.get("type") == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64":
            return ImagePart(data=source.get("data"), media_type=source.get("media_type"))
        return ImagePart(url=source.get("url"))
    return TextPart(str(block.get("text") or ""))


def result_text(content: Any) -> str:
    return "".join(str(b.get("text") or "") for b in blocks_of(content) if b.get("type") == "text")


def thinking_of(blocks: list[dict[str, Any]]) -> tuple[Thinking, ...]:
    out = []
    for b in blocks:
        if b.get("type") == "thinking":
            out.append(Thinking(str(b.get("thinking") or ""), b.get("signature")))
        elif b.get("type") == "redacted_thinking":
            out.append(Thinking(redacted=str(b.get("data") or "")))
    return tuple(out)


def tool_calls_of(blocks: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(str(b.get("id") or ""), str(b.get("name") or ""), json.dumps(b.get("input") or {}))
                 for b in blocks if b.get("type") == "tool_use")


def messages_from_wire(turns: list[Mapping[str, Any]]) -> list[Message]:
    out: list[Message] = []
    for turn in turns:
        blocks = blocks_of(turn.get("content"))
        if turn.get("role") == "assistant":
            text = "".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
            out.append(Message("assistant", text, tool_calls=tool_calls_of(blocks), thinking=thinking_of(blocks)))
            continue
        out += [Message("tool", result_text(b.get("content")), tool_call_id=str(b.get("tool_use_id")))
                for b in blocks if b.get("type") == "tool_result"]
        parts = [part_from_wire(b) for b in blocks if b.get("type") in ("text", "image")]
        if parts:
            text = "".join(p.text for p in parts if isinstance(p, TextPart))
            has_image = any(isinstance(p, ImagePart) for p in parts)
            out.append(Message("user", text, tuple(parts) if has_image else ()))
    return out


def request_from_wire(body: Mapping[str, Any], **fields: Any) -> ChatRequest:
    system = body.get("system")
    system_text_ = system if isinstance(system, str) else result_text(system)
    messages = ([Message("system", system_text_)] if system_text_ else []) + messages_from_wire(body["messages"])
    choice = body.get("tool_choice") or {}
    fmt = (body.get("output_config") or {}).get("format")
    thinking = body.get("thinking") or {}
    options: dict[str, Any] = {
        "messages": tuple(messages),
        "max_tokens": body.get("max_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "stop": tuple(body.get("stop_sequences") or ()),
        "tools": tuple(Tool(t["name"], t.get("description"), t.get("input_schema") or {}, t.get("strict"))
                       for t in body.get("tools") or ()),
        "tool_choice": ToolChoice(CHOICE_MODES[choice["type"]], choice.get("name")) if choice.get("type") else None,
        "parallel_tool_calls": False if choice.get("disable_parallel_tool_use") else None,
        "response_format": "json_schema" if fmt else "text",
        "json_schema": JsonSchemaFormat("response", fmt["schema"]) if fmt else None,
        "thinking_budget": thinking.get("budget_tokens") if thinking.get("type") == "enabled" else None,
    }
    options.update(fields)
    return ChatRequest(**options)


def usage_from_wire(usage: Any) -> Usage:
    """Input tokens counted whole (uncached + cache writes + cache reads); reads as cached."""
    usage = usage if isinstance(usage, dict) else {}
    read = int(usage.get("cache_read_input_tokens") or 0)
    written = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(input_tokens=int(usage.get("input_tokens") or 0) + read + written,
                 output_tokens=int(usage.get("output_tokens") or 0), cached_tokens=read)
