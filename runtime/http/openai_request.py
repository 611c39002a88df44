"""From an OpenAI chat-completions body to the normalized request, refusing what the gateway
cannot honour: every refusal is a 400 (413 for sizes) naming the field, never a parameter
silently dropped.

Refused: parameters the gateway does not implement (unless given their no-op value), unknown
fields, text that is not valid Unicode (a lone surrogate), more than 4 stop sequences, content
part types other than text and image_url, images outside user turns or by a scheme other than
https/http/data, images and tool schemas over their size limits, tool-call arguments that are not
a JSON object, tool turns that answer no earlier call, and tool options without tools."""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

from providers.types import ChatRequest
from providers.wire.openai_chat import call_id_in, request_from_wire
from runtime.http.errors import ApiError
from runtime.http.openai_schemas import MAX_STOP_SEQUENCES, ChatCompletionBody

#: parameters accepted only with the value that changes nothing
NO_OP_VALUES: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0, None),
    "frequency_penalty": (0, 0.0, None),
    "store": (False, None),
    "service_tier": ("auto", "default", None),
    "function_call": (None,),
    "functions": (None, []),
}
#: accepted as they are: they do not change the answer
HARMLESS = frozenset({"metadata"})
#: fields that clients echo back on an assistant turn they received (ignored)
ECHOED_MESSAGE_FIELDS = frozenset({"refusal", "annotations", "audio", "function_call", "reasoning_content", "reasoning"})
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif|webp));base64,([A-Za-z0-9+/=\s]*)$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Limits:
    max_image_bytes: int
    max_images: int
    max_tool_schema_bytes: int


def bad(field: str, message: str, kind: str = "invalid_request") -> ApiError:
    return ApiError(400, kind, message, field=field)


def unsupported(field: str, message: str | None = None) -> ApiError:
    return bad(field, message or f"{field!r} is not supported by this gateway", "unsupported_parameter")


def invalid_text(value: Any, path: str) -> str | None:
    """The path of the first string under `value` that is not valid Unicode, if any."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path
        return None
    items: Iterator[tuple[Any, Any]] = iter(())
    if isinstance(value, dict):
        items = iter(value.items())
    elif isinstance(value, list):
        items = iter(enumerate(value))
    for key, item in items:
        found = invalid_text(item, f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}")
        if found:
            return found
    return None


def check_extras(extra: dict[str, Any] | None) -> None:
    for name, value in (extra or {}).items():
        if name in HARMLESS:
            continue
        if name in NO_OP_VALUES and value in NO_OP_VALUES[name]:
            continue
        if name in NO_OP_VALUES:
            raise unsupported(name)
        raise unsupported(name, f"unrecognized request argument {name!r}")


def check_image(url: Any, field: str, limits: Limits) -> None:
    if not isinstance(url, str) or not url:
        raise bad(field, "image_url.url is required")
    if url.startswith(("https://", "http://")):
        if len(url) > 4096:
            raise bad(field, "image URL longer than 4096 characters")
        return
    match = _DATA_URL.match(url)
    if not match:
        raise bad(field, "an image must be an https URL or a data:image/(png|jpeg|gif|webp);base64 URL")
    data = match.group(2)
    if len(data) * 3 // 4 > limits.max_image_bytes:
        raise ApiError(413, "payload_too_large", f"image over {limits.max_image_bytes} bytes", field=field)
    try:
        base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise bad(field, "image data is not valid base64") from None


def check_parts(i: int, role: str, content: Any, limits: Limits) -> int:
    """Checks one message's content parts; returns how many images it holds."""
    images = 0
    for j, part in enumerate(content if isinstance(content, list) else ()):
        field = f"messages[{i}].content[{j}]"
        if part.type == "text":
            if part.text is None:
                raise bad(f"{field}.text", "a text part needs its text")
        elif part.type == "image_url":
            if role != "user":
                raise bad(field, f"image parts are only allowed in user messages, not {role!r}")
            check_image((part.image_url or {}).get("url"), f"{field}.image_url.url", limits)
            images += 1
        else:
            raise unsupported(f"{field}.type", f"content part type {part.type!r} is not supported by this gateway")
    return images


def check_messages(body: ChatCompletionBody, limits: Limits) -> None:
    open_calls: set[str] = set()
    images = 0
    for i, m in enumerate(body.messages):
        for name, value in (m.model_extra or {}).items():
            if value not in (None, [], "", {}) and not (m.role == "assistant" and name in ECHOED_MESSAGE_FIELDS):
                raise unsupported(f"messages[{i}].{name}")
        images += check_parts(i, m.role, m.content, limits)
        if m.tool_calls and m.role != "assistant":
            raise bad(f"messages[{i}].tool_calls", "only assistant messages carry tool_calls")
        for j, call in enumerate(m.tool_calls or ()):
            try:
                args = json.loads(call.function.arguments or "{}")
            except json.JSONDecodeError:
                args = None
            if not isinstance(args, dict):
                raise bad(f"messages[{i}].tool_calls[{j}].function.arguments", "tool call arguments must be a JSON object")
            open_calls.add(call_id_in(call.id)[0])
        if m.role == "tool":
            if m.tool_call_id is None or call_id_in(m.tool_call_id)[0] not in open_calls:
                raise bad(f"messages[{i}].tool_call_id", "a tool message must answer a tool call of an earlier "
                          "assistant message")
        elif m.tool_call_id is not None:
            raise bad(f"messages[{i}].tool_call_id", "only tool messages carry tool_call_id")
    if images > limits.max_images:
        raise bad("messages", f"at most {limits.max_images} images per request")


def check_tools(body: ChatCompletionBody, limits: Limits) -> None:
    names: set[str] = set()
    for i, tool in enumerate(body.tools or ()):
        fn = tool.function
        if fn.name in names:
            raise bad(f"tools[{i}].function.name", f"tool name {fn.name!r} is given twice")
        names.add(fn.name)
        if fn.parameters is not None:
            if fn.parameters.get("type", "object") != "object":
                raise bad(f"tools[{i}].function.parameters", "tool parameters must be an object schema")
            if len(json.dumps(fn.parameters)) > limits.max_tool_schema_bytes:
                raise ApiError(413, "payload_too_large", f"tool schema over {limits.max_tool_schema_bytes} bytes",
                               field=f"tools[{i}].function.parameters")
    choice = body.tool_choice
    if not names and choice is not None:
        raise bad("tool_choice", "tool_choice is only allowed when tools are specified")
    if not names and body.parallel_tool_calls is not None:
        raise bad("parallel_tool_calls", "parallel_tool_calls is only allowed when tools are specified")
    if choice is not None and not isinstance(choice, str) and choice.function.name not in names:
        raise bad("tool_choice", f"tool_choice names {choice.function.name!r}, which is not in tools")


def chat_request(body: ChatCompletionBody, *, default_max_tokens: int, request_id: str, limits: Limits) -> ChatRequest:
    """The normalized request of a valid body, or an ApiError naming what cannot be honoured."""
    forbidden = body.forbidden_field()
    if forbidden:
        raise ApiError(400, "forbidden_field", f"{forbidden!r} cannot be set by clients", field=forbidden)
    check_extras(body.model_extra)
    raw = body.model_dump(by_alias=True, exclude_none=True)
    for name in ("messages", "tools", "stop", "response_format"):
        found = invalid_text(raw.get(name), name)
        if found:
            raise bad(found, f"{found} is not valid Unicode text (a lone surrogate?)", "invalid_text")
    if body.top_logprobs is not None and not body.logprobs:
        raise bad("top_logprobs", "top_logprobs needs logprobs: true")
    if len(body.stops) > MAX_STOP_SEQUENCES:
        raise bad("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences")
    fmt = body.response_format
    if fmt is not None and fmt.type == "json_schema" and fmt.json_schema is None:
        raise bad("response_format.json_schema", "a json_schema response format needs its json_schema")
    check_messages(body, limits)
    check_tools(body, limits)
    return request_from_wire(raw, max_tokens=body.output_limit or default_max_tokens, stop=body.stops,
                             request_id=request_id)
