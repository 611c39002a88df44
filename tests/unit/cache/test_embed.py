"""The ONNX MiniLM embedder and its async micro-batcher."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from runtime.cache.embed import BatchingEmbedder, EmbedderUnavailable, _package_dir

TEXTS = [
    "How do I reverse a list in Python?",
    "How can I reverse a list in Python?",
    "What is the capital of France?",
    "Explain the difference between TCP and UDP, with an example of when to use each.",
]


def test_vectors_are_unit_length_float32(embedder):
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)


def test_embedding_is_deterministic(embedder):
    assert np.array_equal(embedder.embed(TEXTS), embedder.embed(TEXTS))


def test_a_batch_equals_one_by_one(embedder):
    batch = embedder.embed(TEXTS)  # padded to the longest text
    for text, row in zip(TEXTS, batch):
        assert float(embedder.embed([text])[0] @ row) > 0.999


def test_paraphrases_are_closer_than_unrelated_questions(embedder):
    v = embedder.embed(TEXTS)
    assert float(v[0] @ v[1]) > 0.97
    assert float(v[0] @ v[2]) < 0.5


def test_fits_says_whether_text_is_truncated(embedder):
    assert embedder.fits("short question")
    assert not embedder.fits("word " * 400)


def test_missing_package_is_a_clear_error():
    with pytest.raises(EmbedderUnavailable, match="not installed"):
        _package_dir("switchboard_no_such_model_package")


class CountingEmbedder:
    """Vector = [len(text), batch number]; records every batch it was given."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail

    def embed(self, texts: list[str]) -> np.ndarray:
        self.batches.append(list(texts))
        if self.fail:
            raise RuntimeError("model crashed")
        return np.array([[len(t), len(self.batches)] for t in texts], dtype=np.float32)

    def fits(self, text: str) -> bool:
        return True


async def test_concurrent_calls_are_coalesced_into_one_batch(clock):
    inner = CountingEmbedder()
    front = BatchingEmbedder(inner, max_batch=32, max_wait_s=0.005, clock=clock)
    texts = ["a", "bb", "ccc", "dddd", "eeeee"]
    vectors = await asyncio.gather(*(front.embed_one(t) for t in texts))
    assert inner.batches == [texts]
    assert [int(v[0]) for v in vectors] == [1, 2, 3, 4, 5]  # each caller gets its own row
    assert front.batches == 1


async def test_a_full_batch_runs_at_once_and_the_rest_starts_the_next(clock):
    inner = CountingEmbedder()
    front = BatchingEmbedder(inner, max_batch=2, max_wait_s=10.0, clock=clock)
    start = clock.monotonic()
    vectors = await asyncio.gather(*(front.embed_one(t) for t in ["a", "b", "c", "d", "e"]))
    assert inner.batches == [["a", "b"], ["c", "d"], ["e"]]
    assert sorted({int(v[1]) for v in vectors}) == [1, 2, 3]
    # only the last, partial batch waited for max_wait_s (on the fake clock)
    assert clock.monotonic() - start == pytest.approx(10.0)


async def test_sequential_calls_each_get_a_batch(clock):
    inner = CountingEmbedder()
    front = BatchingEmbedder(inner, clock=clock)
    await front.embed_one("x")
    await front.embed_one("y")
    assert inner.batches == [["x"], ["y"]]


async def test_a_model_failure_reaches_every_waiter(clock):
    front = BatchingEmbedder(CountingEmbedder(fail=True), clock=clock)
    results = await asyncio.gather(front.embed_one("a"), front.embed_one("b"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
