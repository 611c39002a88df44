"""Deterministic answers and token counting.

The same prompt always gets the same answer, so tests and cache benchmarks are reproducible.
Tokens are counted with a simple, documented rule (not a vendor tokenizer): a text costs
ceil(utf8 bytes / 4) tokens, and each prompt message adds a fixed overhead.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, Sequence

MESSAGE_OVERHEAD_TOKENS = 4
FinishKind = Literal["stop", "length", "tool_calls"]

_WORDS = (
    "the system routes each request along a chain of models that balances cost speed and "
    "quality while limits breakers and retries keep every platform healthy under load so "
    "answers arrive quickly with clear accounting of tokens latency and spend across teams "
    "agents pipelines caches and dashboards that operators watch during busy afternoons"
).split()
STOPWORDS = frozenset(
    "a an and are as at be but by can could do does for from has have how i in is it its me my "
    "of on or our please should so that the their them there these this to was we what when "
    "where which who why will with would you your".split()
)
_INTENTS = (
    ("code", ("code", "function", "bug", "python", "typescript", "compile", "error", "refactor")),
    ("billing", ("bill", "invoice", "price", "cost", "payment", "refund", "charge")),
    ("support", ("help", "broken", "issue", "problem", "fix", "crash")),
    ("design", ("layout", "color", "button", "style", "ui", "css", "design")),
    ("data", ("report", "metric", "chart", "sql", "query", "dashboard", "data")),
)
_IMPERATIVES = frozenset(
    "add build check create delete explain find fix generate list make move refactor remove "
    "rename review show summarize translate update write".split()
)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9_\-']*")


def count_tokens(text: str) -> int:
    """Tokens in a text: ceil(utf8 bytes / 4)."""
    return (len(text.encode("utf-8")) + 3) // 4


def count_prompt_tokens(texts: Sequence[str]) -> int:
    """Tokens of a prompt given as its message texts (system prompt included)."""
    return sum(count_tokens(t) + MESSAGE_OVERHEAD_TOKENS for t in texts)


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=32).digest()


def sentence_for(prompt: str) -> str:
    """A deterministic sentence of 8-40 words derived from a hash of the prompt."""
    digest = _digest(prompt)
    n_words = 8 + digest[0] % 33
    words = [_WORDS[(digest[(i + 1) % 32] + 7 * i) % len(_WORDS)] for i in range(n_words)]
    words[0] = words[0].capitalize()
    return " ".join(words) + "."


def keywords_of(text: str, limit: int = 5) -> list[str]:
    seen: list[str] = []
    for word in _WORD_RE.findall(text):
        low = word.lower()
        if len(low) > 2 and low not in STOPWORDS and low not in seen:
            seen.append(low)
            if len(seen) == limit:
                break
    return seen


def json_answer(prompt: str) -> str:
    """A JSON object classifying the prompt: intent, entities, type, keywords."""
    words = _WORD_RE.findall(prompt)
    lowered = {w.lower() for w in words}
    intent = next((name for name, cues in _INTENTS if lowered & set(cues)), "general")
    entities = []
    for w in words[1:]:
        if w[0].isupper() and w not in entities:
            entities.append(w)
    stripped = prompt.strip()
    if stripped.endswith("?"):
        kind = "question"
    elif words and words[0].lower() in _IMPERATIVES:
        kind = "command"
    else:
        kind = "statement"
    obj = {"intent": intent, "entities": entities[:5], "type": kind, "keywords": keywords_of(prompt)}
    return json.dumps(obj, separators=(", ", ": "))



def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that costs at most `max_tokens` tokens."""
    raw = text.encode("utf-8")
    if len(raw) <= 4 * max_tokens:
        return text
    return raw[: 4 * max(0, max_tokens)].decode("utf-8", errors="ignore")


@dataclass(frozen=True, slots=True)
class Completion:
    """The simulated model's answer to one request (answers.py decides what it is)."""

    text: str
    finish: FinishKind
    input_tokens: int
    output_tokens: int
    tool_calls: tuple[Any, ...] = ()  # answers.SimCall
    reasoning: str = ""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def split_for_stream(text: str) -> list[str]:
    """Split an answer into stream pieces (a word and its trailing space each); joined, they
    give back the text exactly."""
    pieces = re.findall(r"\S+\s*|\s+", text)
    return pieces or [""]


def fragments(text: str, size: int = 7) -> list[str]:
    """Split tool-call arguments into stream fragments of `size` characters (joined, the text)."""
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def wants_json(system_prompt: str | None) -> bool:
    """A system prompt that asks for JSON switches JSON mode on."""
    return bool(system_prompt) and "json" in system_prompt.lower()
