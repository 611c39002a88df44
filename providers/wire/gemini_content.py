"""Gemini `generateContent` bodies ↔ the normalized types, both directions.

- roles user/model; system turns → `systemInstruction`; images → `inlineData` (Gemini takes no
  remote URL: a request with one is not sent here, see the catalog's `image_urls` capability);
- assistant tool calls → `functionCall` parts carrying the call's `thoughtSignature` (a call that
  another vendor made gets Google's documented dummy signature); `tool` turns → one user turn
  of `functionResponse` parts, each named after the call it answers (found by its id in the
  earlier assistant turn); Gemini's calls have no ids, so answers get generated ones;
- tools → `functionDeclarations` with their JSON schemas converted to Gemini's Schema subset
  (`gemini_schema`); tool choice → `functionCallingConfig` (AUTO / ANY + allowed names / NONE);
- json_object / json_schema → `responseMimeType` (+ `responseSchema`); reasoning →
  `thinkingConfig` (a budget, thoughts included); seed → `generationConfig.seed`.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Mapping

from providers.types import (
    BadRequestError,
    ChatRequest,
    FinishReason,
    ImagePart,
    JsonSchemaFormat,
    Message,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)

#: Google's documented value for a function call whose signature is unknown (made elsewhere)
DUMMY_SIGNATURE = "skip_thought_signature_validator"
EFFORT_BUDGETS = {"minimal": 512, "low": 1024, "medium": 8192, "high": 24576}
MODES = {"auto": "AUTO", "required": "ANY", "function": "ANY", "none": "NONE"}
#: Schema fields kept as they are (Gemini's OpenAPI 3.0 subset)
_KEPT = ("format", "title", "description", "nullable", "maxItems", "minItems", "minProperties",
         "maxProperties", "minLength", "maxLength", "pattern", "minimum", "maximum", "default")


class SchemaConversionError(BadRequestError):
    """A JSON schema Gemini's Schema cannot express (a recursive $ref)."""


# --------------------------------------------------------------------------------------------
# JSON Schema → Gemini Schema
# --------------------------------------------------------------------------------------------


def gemini_schema(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None,
                  seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """What the API accepts for a JSON schema: `$ref`s inlined (from `$defs`/`definitions`),
    `const` as a one-value enum, a type list as one type + `nullable`, and keywords outside
    the subset (`additionalProperties`, `$schema`, `examples`, …) left out."""
    root = schema if root is None else root
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if ref in seen:
            raise SchemaConversionError(f"recursive schema reference {ref!r} cannot be sent to Gemini", status=400)
        target: Any = root
        for key in (k for k in ref.removeprefix("#").split("/") if k):
            target = target.get(key, {}) if isinstance(target, dict) else {}
        return gemini_schema(target, root, (*seen, ref))
    out: dict[str, Any] = {k: schema[k] for k in _KEPT if k in schema}
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        if "null" in kind:
            out["nullable"] = True
        kind = kinds[0] if kinds else "null"
    if "const" in schema:
        out["enum"] = [schema["const"]]
        kind = kind or "string"
    if "enum" in schema:
        out["enum"] = list(schema["enum"])
    if kind is None and "properties" in schema:
        kind = "object"
    if kind is not None:
        out["type"] = kind
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: gemini_schema(v, root, seen) for k, v in schema["properties"].items()}
    if "required" in schema:
        out["required"] = list(schema["required"])
    if isinstance(schema.get("items"), dict):
        out["items"] = gemini_schema(schema["items"], root, seen)
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(alternatives, list):
        nulls = [s for s in alternatives if isinstance(s, dict) and s.get("type") == "null"]
        rest = [gemini_schema(s, root, seen) for s in alternatives if s not in nulls]
        if nulls:
            out["nullable"] = True
        if len(rest) == 1:
            out.update(rest[0])
        elif rest:
            out["anyOf"] = rest
    return out


# --------------------------------------------------------------------------------------------
# normalized → wire
# --------------------------------------------------------------------------------------------


def user_parts(m: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for p in m.content_parts:
        if isinstance(p, TextPart):
            parts.append({"text": p.text})
        elif p.is_inline:
            parts.append({"inlineData": {"mimeType": p.media_type, "data": p.data}})
        else:
            raise BadRequestError("Gemini takes images inline only, not by URL", status=400)
    return parts or [{"text": ""}]


def model_parts(m: Message) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"text": m.content}] if m.content or not m.tool_calls else []
    for c in m.tool_calls:
        try:
            args = json.loads(c.arguments or "{}")
        except json.JSONDecodeError:
            raise BadRequestError(f"tool call {c.id!r}: arguments are not JSON", status=400) from None
        parts.append({"functionCall": {"name": c.name, "args": args},
                      "thoughtSignature": c.signature or DUMMY_SIGNATURE})
    return parts


def function_response(m: Message, names: Mapping[str, str]) -> dict[str, Any]:
    name = names.get(m.tool_call_id or "")
    if name is None:
        raise BadRequestError(f"tool result {m.tool_call_id!r} answers no earlier tool call", status=400)
    try:
        value = json.loads(m.content)
    except json.JSONDecodeError:
        value = m.content
    response = value if isinstance(value, dict) else {"result": value}
    return {"functionResponse": {"name": name, "response": response}}


def contents_to_wire(conversation: tuple[Message, ...]) -> list[dict[str, Any]]:
    names: dict[str, str] = {}  # tool call id -> function name
    out: list[dict[str, Any]] = []
    for m in conversation:
        if m.role == "assistant":
            names.update({c.id: c.name for c in m.tool_calls})
            role, parts = "model", model_parts(m)
        elif m.role == "tool":
            role, parts = "user", [function_response(m, names)]
        else:
            role, parts = "user", user_parts(m)
        if out and out[-1]["role"] == role:
            out[-1]["parts"] += parts
        else:
            out.append({"role": role, "parts": parts})
    return out


def generation_config(request: ChatRequest) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    for name, key in (("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if getattr(request, name) is not None:
            config[key] = getattr(request, name)
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.response_format in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if request.response_format == "json_schema" and request.json_schema is not None:
        config["responseSchema"] = gemini_schema(request.json_schema.schema)
    if request.wants_reasoning:
        budget = request.thinking_budget or EFFORT_BUDGETS[request.reasoning_effort or "medium"]
        config["thinkingConfig"] = {"thinkingBudget": budget, "includeThoughts": True}
    return config


def request_to_wire(request: ChatRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": contents_to_wire(request.conversation)}
    system = request.system_prompt
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    if request.tools:
        body["tools"] = [{"functionDeclarations": [
            {"name": t.name, **({"description": t.description} if t.description is not None else {}),
             "parameters": gemini_schema(t.parameters)}
            for t in request.tools]}]
    if request.tool_choice is not None:
        fc: dict[str, Any] = {"mode": MODES[request.tool_choice.mode]}
        if request.tool_choice.mode == "function":
            fc["allowedFunctionNames"] = [request.tool_choice.name]
        body["toolConfig"] = {"functionCallingConfig": fc}
    config = generation_config(request)
    if config:
        body["generationConfig"] = config
    return body


# --------------------------------------------------------------------------------------------
# wire → normalized (answers)
# --------------------------------------------------------------------------------------------


def new_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


def parts_of(candidate: Any) -> list[dict[str, Any]]:
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def answer_text(parts: list[dict[str, Any]]) -> str:
    """The answer's text parts joined; thought summaries (`thought: true`) are left out."""
    return "".join(str(p.get("text") or "") for p in parts if "text" in p and not p.get("thought"))


def thought_text(parts: list[dict[str, Any]]) -> str:
    return "".join(str(p.get("text") or "") for p in parts if p.get("thought"))


def tool_calls_of(parts: list[dict[str, Any]]) -> tuple[ToolCall, ...]:
    calls = []
    for p in parts:
        call = p.get("functionCall")
        if isinstance(call, dict):
            calls.append(ToolCall(str(call.get("id") or new_call_id()), str(call.get("name") or ""),
                                  json.dumps(call.get("args") or {}), p.get("thoughtSignature")))
    return tuple(calls)


def finish_with_calls(reason: FinishReason, calls: tuple[ToolCall, ...]) -> FinishReason:
    """Gemini says STOP when it calls functions; OpenAI's clients expect `tool_calls`."""
    return "tool_calls" if calls and reason == "stop" else reason


def usage_from_wire(meta: Any) -> Usage | None:
    """usageMetadata; thinking tokens are billed as output (and counted as reasoning)."""
    if not isinstance(meta, dict):
        return None
    thoughts = int(meta.get("thoughtsTokenCount") or 0)
    return Usage(input_tokens=int(meta.get("promptTokenCount") or 0),
                 output_tokens=int(meta.get("candidatesTokenCount") or 0) + thoughts,
                 reasoning_tokens=thoughts, cached_tokens=int(meta.get("cachedContentTokenCount") or 0))


def user_message_from_wire(parts: list[dict[str, Any]]) -> Message | None:
    ordered = [ImagePart(data=p["inlineData"].get("data"), media_type=p["inlineData"].get("mimeType"))
               if isinstance(p.get("inlineData"), dict) else TextPart(str(p.get("text") or ""))
               for p in parts if "inlineData" in p or ("text" in p and not p.get("thought"))]
    if not ordered:
        return None
    text = "".join(p.text for p in ordered if isinstance(p, TextPart))
    has_image = any(isinstance(p, ImagePart) for p in ordered)
    return Message("user", text, tuple(ordered) if has_image else ())


def messages_from_wire(contents: Any) -> list[Message]:
    messages: list[Message] = []
    pending: dict[str, list[str]] = {}  # function name -> ids of its calls not yet answered
    for c in contents or ():
        parts = parts_of({"content": c})
        if c.get("role") == "model":
            calls = tool_calls_of(parts)
            for call in calls:
                pending.setdefault(call.name, []).append(call.id)
            messages.append(Message("assistant", answer_text(parts), tool_calls=calls))
            continue
        for p in parts:
            if isinstance(p.get("functionResponse"), dict):
                r = p["functionResponse"]
                ident = (pending.get(r.get("name")) or [new_call_id()]).pop(0)
                response = r.get("response")
                if isinstance(response, dict) and set(response) == {"result"}:
                    response = response["result"]
                content = response if isinstance(response, str) else json.dumps(response)
                messages.append(Message("tool", content, tool_call_id=ident))
        user = user_message_from_wire(parts)
        if user is not None:
            messages.append(user)
    return messages


def request_from_wire(body: Mapping[str, Any], **fields: Any) -> ChatRequest:
    """A generateContent body → the normalized request."""
    system = answer_text(parts_of({"content": body.get("systemInstruction") or {}}))
    messages = ([Message("system", system)] if system else []) + messages_from_wire(body.get("contents"))
    tools = tuple(Tool(d["name"], d.get("description"), d.get("parameters") or {})
                  for t in body.get("tools") or () for d in t.get("functionDeclarations") or ())
    fc = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = fc.get("allowedFunctionNames") or []
    choice = None
    if fc.get("mode"):
        mode = {"AUTO": "auto", "ANY": "required", "NONE": "none"}[fc["mode"]]
        choice = ToolChoice("function", allowed[0]) if mode == "required" and len(allowed) == 1 else ToolChoice(mode)  # type: ignore[arg-type]
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    schema = config.get("responseSchema")
    json_mode = config.get("responseMimeType") == "application/json"
    options: dict[str, Any] = {
        "messages": tuple(messages),
        "max_tokens": config.get("maxOutputTokens"),
        "temperature": config.get("temperature"),
        "top_p": config.get("topP"),
        "seed": config.get("seed"),
        "stop": tuple(config.get("stopSequences") or ()),
        "response_format": "json_schema" if schema else ("json_object" if json_mode else "text"),
        "json_schema": JsonSchemaFormat("response", schema) if schema else None,
        "thinking_budget": thinking.get("thinkingBudget"),
        "tools": tools,
        "tool_choice": choice,
    }
    options.update(fields)
    return ChatRequest(**options)
