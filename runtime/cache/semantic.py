"""The semantic cache layer: a paraphrase of a cached question gets the cached answer.

Only the text of the LAST user message is compared (cosine similarity of all-MiniLM-L6-v2
embeddings, runtime/cache/embed.py); everything else must be identical, so it is hashed into the
*partition*: the system prompt, every earlier message, the route, temperature, max_tokens,
top_p, stop, response_format and the tenant. A paraphrase with another system prompt, tenant or
model never matches. Texts longer than the model's 256-token window are not compared (two long
prompts differing only past the window would look identical).

Default threshold, measured by bench/semantic_threshold.py on GPTCache's 999 paraphrase pairs
(insert every `origin`, query every `similar`; table in bench/SEMANTIC.md). The rule: the lowest
threshold whose wrong hits are at most 2% of its correct hits. Measured with this int8 model:

    threshold   hits  wrong  misses        (GPTCache's albert at 0.95: 425 / 25 / 549)
    0.90         726     28     245
    0.95         386      8     605   (2.1%)
    0.96         298      8     693   (2.7%)
    0.97         182      2     815   (1.1%)  <- DEFAULT_THRESHOLD

So the default is 0.97: conservative (a wrong answer costs more than a miss). Most "wrong" hits
above 0.93 return a near-identical origin (the data set has near-duplicate answers), so an
operator whose traffic tolerates that may lower it per deployment. Only requests that use the
semantic layer (opt-in, or a use case configured for it) add their query vectors to the index.
"""
from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from providers.clock import SYSTEM_CLOCK, Clock
from providers.types import ChatRequest
from runtime.cache.keys import canonical_fields, digest, message_fields
from runtime.cache.stores import CacheStore, VectorRecord
from runtime.cache.embed import EMBEDDING_DIM

DEFAULT_THRESHOLD = 0.97


def query_text(request: ChatRequest) -> str | None:
    """The text compared semantically: the last message, when it is a non-empty user turn."""
    if not request.messages:
        return None
    last = request.messages[-1]
    return last.content if last.role == "user" and last.content.strip() else None


def partition_key(request: ChatRequest, *, route: str, tenant: str | None) -> str:
    """Everything in the exact key except the last user message's text."""
    payload = canonical_fields(request, route=route, tenant=tenant)
    messages: list[list[Any]] = [message_fields(m) for m in request.messages]
    if messages:
        messages[-1] = [messages[-1][0], None, *messages[-1][2:]]
    payload["messages"] = messages
    payload["kind"] = "semantic-partition"
    return digest(payload)


class _Partition:
    """Rows of unit vectors (grown by doubling) and the exact keys they point to."""

    def __init__(self, dim: int) -> None:
        self.matrix = np.zeros((8, dim), dtype=np.float32)
        self.keys: list[str] = []
        self.rows: dict[str, int] = {}

    def put(self, key: str, vector: np.ndarray) -> None:
        row = self.rows.get(key)
        if row is None:
            row = len(self.keys)
            if row == len(self.matrix):
                self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
            self.keys.append(key)
            self.rows[key] = row
        self.matrix[row] = vector

    def remove(self, key: str) -> None:
        row = self.rows.pop(key)
        last = len(self.keys) - 1
        if row != last:  # move the last row into the hole
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row] = moved
            self.rows[moved] = row
        self.keys.pop()

    def best(self, vector: np.ndarray) -> tuple[str, float] | None:
        if not self.keys:
            return None
        scores = self.matrix[: len(self.keys)] @ vector
        row = int(np.argmax(scores))
        return self.keys[row], float(scores[row])


class SemanticIndex:
    """Per-partition cosine index over unit vectors (dot product), bounded: beyond
    `max_entries` the oldest entries go first. Pure: no I/O, no clock."""

    def __init__(self, *, dim: int = EMBEDDING_DIM, max_entries: int = 100_000) -> None:
        self.dim = dim
        self.max_entries = max_entries
        self._partitions: dict[str, _Partition] = {}
        self._order: OrderedDict[str, str] = OrderedDict()  # key -> partition, oldest first

    def add(self, partition: str, key: str, vector: np.ndarray) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        old = self._order.get(key)
        if old is not None and old != partition:
            self.remove(key)
        self._partitions.setdefault(partition, _Partition(self.dim)).put(key, vector)
        self._order[key] = partition
        self._order.move_to_end(key)
        while len(self._order) > self.max_entries:
            self.remove(next(iter(self._order)))

    def remove(self, key: str) -> bool:
        partition = self._order.pop(key, None)
        if partition is None:
            return False
        part = self._partitions[partition]
        part.remove(key)
        if not part.keys:
            del self._partitions[partition]
        return True

    def lookup(
        self, partition: str, vector: np.ndarray, threshold: float
    ) -> tuple[str, float] | None:
        """The most similar entry of `partition` if its cosine similarity >= `threshold`."""
        part = self._partitions.get(partition)
        best = part.best(np.asarray(vector, dtype=np.float32)) if part else None
        return best if best is not None and best[1] >= threshold else None

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order


class AsyncEmbedder(Protocol):
    async def embed_one(self, text: str) -> np.ndarray: ...

    def fits(self, text: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SemanticProbe:
    """A request's partition and query embedding, and the index's best match above threshold."""

    partition: str
    vector: np.ndarray
    match: tuple[str, float] | None


class SemanticCache:
    """The semantic layer `ResponseCache` consults: embeds the query, looks it up in the local
    index, and appends new vectors to the shared store's log. `start()` rebuilds the index from
    the store; later probes pull other replicas' additions at most every `sync_interval_s`."""

    def __init__(
        self,
        store: CacheStore,
        embedder: AsyncEmbedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        index: SemanticIndex | None = None,
        sync_interval_s: float = 1.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.threshold = threshold
        self.index = index or SemanticIndex()
        self.sync_interval_s = sync_interval_s
        self._clock = clock
        self._cursor: str | None = None
        self._synced_at: float | None = None

    async def start(self) -> int:
        """Load the model (off the event loop) and rebuild the index from the store; returns the
        number of vectors loaded."""
        await asyncio.to_thread(self.embedder.fits, "warm up")
        self._cursor = None
        return await self.sync()

    async def sync(self) -> int:
        """Load the vectors appended to the store since the last sync."""
        loaded = 0
        while True:
            records, cursor = await self.store.vectors_since(self._cursor)
            for record in records:
                vector = np.frombuffer(record.vector, dtype=np.float32)
                self.index.add(record.partition, record.key, vector)
            loaded += len(records)
            if cursor == self._cursor:
                break
            self._cursor = cursor
        self._synced_at = self._clock.monotonic()
        return loaded

    async def probe(
        self, request: ChatRequest, *, route: str, tenant: str | None
    ) -> SemanticProbe | None:
        """None when the request has no comparable text (not a user turn, or too long)."""
        text = query_text(request)
        if text is None or not self.embedder.fits(text):
            return None
        if self._synced_at is None or (
            self._clock.monotonic() - self._synced_at >= self.sync_interval_s
        ):
            await self.sync()
        vector = await self.embedder.embed_one(text)
        partition = partition_key(request, route=route, tenant=tenant)
        match = self.index.lookup(partition, vector, self.threshold)
        return SemanticProbe(partition=partition, vector=vector, match=match)

    async def add(self, probe: SemanticProbe, key: str, ttl_s: float) -> None:
        self.index.add(probe.partition, key, probe.vector)
        record = VectorRecord(
            partition=probe.partition,
            key=key,
            vector=np.asarray(probe.vector, dtype=np.float32).tobytes(),
            expires_at=self._clock.time() + ttl_s,
        )
        await self.store.add_vector(record)

    def forget(self, key: str) -> None:
        self.index.remove(key)
