"""Reading a Gemini `generateContent` request as the real API does: parts by role, function calls
and responses, thought signatures, tool declarations in the API's schema subset, tool config and
the generation config's JSON schema and thinking settings. Everything it rejects, the real API
rejects too (same status, Google's wording)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from providers.simulator.answers import DUMMY_SIGNATURES, SimTool, ToolUse, signature_for
from providers.simulator.core import SimError, text_of

#: the fields of Gemini's `Schema` object (an OpenAPI 3.0 subset); any other key is refused
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems",
    "properties", "required", "minProperties", "maxProperties", "minLength", "maxLength",
    "pattern", "example", "anyOf", "propertyOrdering", "default", "items", "minimum", "maximum",
})
SCHEMA_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object", "null",
                          "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})


def invalid(message: str) -> SimError:
    return SimError("bad_request", 400, message)


def check_schema(schema: Any, where: str) -> None:
    """Refuse what the API's Schema message cannot hold (JSON Schema keywords such as
    `additionalProperties`, `$ref`, `const`, or a list of types)."""
    if not isinstance(schema, dict):
        raise invalid(f"Invalid value at '{where}': expected an object")
    for key, value in schema.items():
        if key not in SCHEMA_FIELDS:
            raise invalid(f'Invalid JSON payload received. Unknown name "{key}" at \'{where}\': Cannot find field.')
        if key == "type" and value not in SCHEMA_TYPES:
            raise invalid(f"Invalid value at '{where}.type' ({value!r}): expected a single type name")
    for name, sub in (schema.get("properties") or {}).items():
        check_schema(sub, f"{where}.properties[{name}].value")
    if "items" in schema:
        check_schema(schema["items"], f"{where}.items")
    for i, sub in enumerate(schema.get("anyOf") or ()):
        check_schema(sub, f"{where}.any_of[{i}]")


@dataclass
class Conversation:
    texts: list[str] = field(default_factory=list)
    last_user: str = ""
    images: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    last_role: str = "user"


def camel(obj: Any) -> Any:
    """Field names as lowerCamelCase: the API takes proto field names both ways
    (`inline_data` / `inlineData`, `mime_type` / `mimeType`), and SDKs send either."""
    if isinstance(obj, list):
        return [camel(x) for x in obj]
    if not isinstance(obj, dict):
        return obj
    out = {}
    for key, value in obj.items():
        head, *rest = key.split("_")
        name = head + "".join(w.title() for w in rest)
        out[name] = value if name in ("args", "response") else camel(value)
    return out


def read_contents(contents: list[Any]) -> Conversation:
    conv = Conversation()
    contents = camel(contents)
    pending: list[str] = []  # names of the previous model turn's function calls
    for i, c in enumerate(contents):
        if not isinstance(c, dict):
            raise invalid(f"Invalid value at 'contents[{i}]'")
        role = c.get("role", "user")
        if role not in ("user", "model"):
            raise invalid(f"Please use a valid role: user, model. (contents[{i}].role: {role!r})")
        parts = c.get("parts")
        if not isinstance(parts, list) or not parts:
            raise invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        calls, responses, text = [], [], []
        for j, p in enumerate(parts):
            where = f"contents[{i}].parts[{j}]"
            if not isinstance(p, dict):
                raise invalid(f"Invalid value at '{where}'")
            if "functionCall" in p:
                if role != "model":
                    raise invalid(f"{where}: a function call must be in a content with role 'model'.")
                calls.append(_function_call(p, where))
            elif "functionResponse" in p:
                if role != "user":
                    raise invalid(f"{where}: a function response must be in a content with role 'user'.")
                responses.append(_function_response(p, where, pending))
            elif "inlineData" in p:
                data = p["inlineData"] if isinstance(p["inlineData"], dict) else {}
                if not data.get("mimeType") or not data.get("data"):
                    raise invalid(f"{where}.inline_data: mime_type and data are required")
                conv.images.append(str(data["mimeType"]))
            elif "fileData" in p:
                raise invalid(f"{where}.file_data: only files uploaded to the File API can be referenced")
            elif "text" in p and not p.get("thought"):
                text.append(str(p["text"]))
        if role == "user" and pending and len(responses) < len(pending):
            raise invalid(f"Please ensure that the number of function response parts is equal to the number "
                          f"of function call parts of the function call turn. (contents[{i}])")
        pending = calls if role == "model" else []
        joined = "".join(text)
        conv.texts.append(joined + "".join(json.dumps(r) for r in responses))
        if role == "user":
            conv.results = [json.dumps(r) for r in responses]
            if joined or not responses:
                conv.last_user = joined
        conv.last_role = role
    return conv


def _function_call(part: dict[str, Any], where: str) -> str:
    call = part["functionCall"] if isinstance(part["functionCall"], dict) else {}
    name, args = call.get("name"), call.get("args", {})
    if not isinstance(name, str) or not name:
        raise invalid(f"{where}.function_call.name: a name is required")
    signature = part.get("thoughtSignature")
    if signature not in DUMMY_SIGNATURES and signature != signature_for(name, args):
        raise invalid(f"Function call is missing a thought_signature in functionCall parts. This is required "
                      f"for tools to work correctly, and missing thought_signature may lead to degraded model "
                      f"performance. ({where})")
    return name


def _function_response(part: dict[str, Any], where: str, pending: list[str]) -> Any:
    resp = part["functionResponse"] if isinstance(part["functionResponse"], dict) else {}
    if resp.get("name") not in pending:
        raise invalid(f"{where}.function_response.name: {resp.get('name')!r} answers no function call of the "
                      "previous turn")
    if not isinstance(resp.get("response"), dict):
        raise invalid(f"{where}.function_response.response: expected an object")
    return resp["response"]


def read_tools(body: dict[str, Any], results: tuple[str, ...]) -> ToolUse:
    tools = []
    for i, t in enumerate(body.get("tools") or ()):
        for j, fn in enumerate((t or {}).get("functionDeclarations") or ()):
            where = f"tools[{i}].function_declarations[{j}]"
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise invalid(f"* GenerateContentRequest.{where}.name: a name is required")
            params = fn.get("parameters")
            if params is not None:
                check_schema(params, f"{where}.parameters")
            tools.append(SimTool(fn["name"], params or {"type": "object", "properties": {}}))
    config = ((body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
    mode = str(config.get("mode") or "AUTO").upper()
    if mode not in ("AUTO", "ANY", "NONE", "VALIDATED"):
        raise invalid(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
    allowed = config.get("allowedFunctionNames") or []
    unknown = [n for n in allowed if n not in {t.name for t in tools}]
    if unknown:
        raise invalid(f"allowed_function_names: {unknown[0]!r} is not a declared function")
    if mode == "ANY" and len(allowed) == 1:
        return ToolUse(tuple(tools), "function", allowed[0], results=results)
    return ToolUse(tuple(tools), {"AUTO": "auto", "ANY": "required", "NONE": "none"}.get(mode, "auto"),
                   results=results)


def read_schema(config: dict[str, Any]) -> dict[str, Any] | None:
    schema = config.get("responseSchema") or config.get("response_schema")
    if schema is None:
        return config.get("responseJsonSchema")  # full JSON Schema, as sent
    check_schema(schema, "generation_config.response_schema")
    if (config.get("responseMimeType") or config.get("response_mime_type")) != "application/json":
        raise invalid("response_schema requires response_mime_type 'application/json'")
    return schema


def reads_thinking(config: dict[str, Any]) -> bool:
    thinking = config.get("thinkingConfig") or {}
    budget = thinking.get("thinkingBudget")
    return bool(thinking.get("includeThoughts")) or (isinstance(budget, int) and budget != 0)


def system_text(body: dict[str, Any]) -> str:
    content = body.get("systemInstruction") or body.get("system_instruction")
    if not content:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, dict):
        raise invalid("Invalid value: content must be an object")
    return text_of(content.get("parts") or [])
