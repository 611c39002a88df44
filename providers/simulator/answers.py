"""What the simulated model answers: the one deterministic rule every protocol shares.

1. Tools offered, tool choice not `none`, and the last turn is not a tool result: the model
   calls tools instead of answering. Which: the forced tool (named tool choice); otherwise every
   offered tool whose name appears in the last user text, in offer order, or the first offered
   tool if none does; with parallel calls off, only the first of those. Arguments are generated
   from each tool's JSON schema (`value_for`): a string property takes the next capitalized word
   of the last user text that is not a question word (e.g. `Paris`), else an enum's first value or `"sim-<name>"`.
2. After tool results: the answer quotes them (`From the tool results: …`).
3. A JSON schema response format: JSON that validates against it (JSON mode's classification
   object when it fits the schema, else a value generated from the schema).
4. Images received are described first (`I see 2 images (image/png, url).`).
5. Otherwise the tagged sentence of text.py (`[sim:platform/model] …`), or JSON mode's object.
Reasoning, when asked for, is a short fixed thought before the answer.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from providers.simulator.text import (
    Completion,
    count_prompt_tokens,
    count_tokens,
    STOPWORDS,
    json_answer,
    sentence_for,
    truncate_to_tokens,
)

_CAPITALIZED = re.compile(r"\b[A-Z][a-zA-Z]+\b")
#: dummy signatures that Gemini accepts for calls it did not issue (documented by Google)
DUMMY_SIGNATURES = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})


@dataclass(frozen=True, slots=True)
class SimTool:
    name: str
    schema: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class SimCall:
    id: str
    name: str
    arguments: str  # JSON text
    signature: str

    @property
    def args(self) -> Any:
        return json.loads(self.arguments)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """What a request says about tools, whatever protocol it came in."""

    tools: tuple[SimTool, ...] = ()
    mode: str = "auto"  # auto | none | required | function
    forced: str | None = None
    parallel: bool = True
    results: tuple[str, ...] = ()  # the last turn's tool results, when it is one


def signature_for(name: str, args: Any) -> str:
    """The thought signature the simulator attaches to a call (and expects back)."""
    canonical = json.dumps(args, sort_keys=True, separators=(",", ":"))
    return "sim-sig-" + hashlib.blake2b(f"{name}\0{canonical}".encode(), digest_size=12).hexdigest()


def resolve_ref(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for key in ref[2:].split("/"):
        node = node.get(key, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, dict) else {}


def value_for(schema: Mapping[str, Any], name: str, words: list[str], root: Mapping[str, Any] | None = None) -> Any:
    """A deterministic value that validates against `schema` (types, enums, required keys,
    array bounds, numeric minimums); `words` feed string values in order."""
    root = root if root is not None else schema
    schema = resolve_ref(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return value_for(schema[key][0], name, words, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = str(kind).lower()  # Gemini's Schema spells types in capitals
    if kind == "object":
        props = schema.get("properties") or {}
        return {key: value_for(sub, key, words, root) for key, sub in props.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems") or 1))
        if schema.get("maxItems") is not None:
            count = min(count, int(schema["maxItems"]))
        return [value_for(schema.get("items") or {}, name, words, root) for _ in range(count)]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return words.pop(0) if words else f"sim-{name}"


_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float), "boolean": bool}


def fits(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether `value` satisfies the schema's types, enums, required keys, properties and items
    (enough to prefer an answer that already fits; generated values always do)."""
    kind = schema.get("type")
    kinds = [str(k).lower() for k in (kind if isinstance(kind, list) else [kind] if kind else [])]
    if kinds and not any(isinstance(value, _TYPES.get(k, object)) and not (k != "boolean" and isinstance(value, bool))
                         for k in kinds):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        if any(k not in value for k in schema.get("required") or ()):
            return False
        if schema.get("additionalProperties") is False and set(value) - set(props):
            return False
        return all(fits(v, props[k]) for k, v in value.items() if k in props)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return all(fits(v, schema["items"]) for v in value)
    return True


def schema_answer(schema: Mapping[str, Any], last_user: str) -> str:
    """The JSON-mode answer when it already fits the schema, else a value generated from it."""
    classified = json_answer(last_user)
    if fits(json.loads(classified), schema):
        return classified
    return json.dumps(value_for(schema, "value", names_in(last_user)))


def names_in(text: str) -> list[str]:
    """Capitalized words that are not question or filler words ("What", "Please"): the names
    string arguments take, in order."""
    return [w for w in _CAPITALIZED.findall(text) if w.lower() not in STOPWORDS]


def plan_calls(use: ToolUse, last_user: str) -> tuple[SimCall, ...]:
    if not use.tools or use.mode == "none" or use.results:
        return ()
    by_name = {t.name: t for t in use.tools}
    if use.mode == "function" and use.forced in by_name:
        chosen = [by_name[use.forced]]
    else:
        chosen = [t for t in use.tools if t.name in last_user] or [use.tools[0]]
    if not use.parallel:
        chosen = chosen[:1]
    words = names_in(last_user)
    calls = []
    for i, tool in enumerate(chosen):
        args = value_for(tool.schema, tool.name, words)
        text = json.dumps(args)
        digest = hashlib.blake2b(f"{i}\0{tool.name}\0{text}\0{last_user}".encode(), digest_size=9).hexdigest()
        calls.append(SimCall(f"call_{digest}", tool.name, text, signature_for(tool.name, args)))
    return tuple(calls)


def describe_images(images: Sequence[str]) -> str:
    if not images:
        return ""
    noun = "image" if len(images) == 1 else "images"
    return f"I see {len(images)} {noun} ({', '.join(images)}). "


def answer(
    *,
    platform: str,
    model: str,
    prompt_texts: Sequence[str],
    last_user: str,
    json_mode: bool,
    max_tokens: int | None,
    tools: ToolUse = ToolUse(),
    schema: Mapping[str, Any] | None = None,
    images: Sequence[str] = (),
    reasoning: bool = False,
) -> Completion:
    input_tokens = count_prompt_tokens(prompt_texts)
    thought = "Let me work through this step by step." if reasoning else ""
    calls = plan_calls(tools, last_user)
    if calls:
        out = sum(count_tokens(c.name + c.arguments) for c in calls) + count_tokens(thought)
        return Completion("", "tool_calls", input_tokens, out, calls, thought)
    if schema is not None:
        full = schema_answer(schema, last_user)
    elif tools.results:
        full = f"[sim:{platform}/{model}] From the tool results: {'; '.join(tools.results)}"
    elif json_mode:
        full = json_answer(last_user)
    else:
        full = f"[sim:{platform}/{model}] {describe_images(images)}{sentence_for(last_user)}"
    text = full if max_tokens is None else truncate_to_tokens(full, max_tokens)
    return Completion(text, "stop" if text == full else "length", input_tokens,
                      count_tokens(text) + count_tokens(thought), (), thought)
