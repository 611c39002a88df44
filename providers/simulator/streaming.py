"""Paced stream bodies: the first frame after the first-token delay, then each frame after the
time its tokens take; optional cut and corruption (faults)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import AsyncIterator

from providers.clock import Clock
from providers.simulator.core import StreamPlan


@dataclass(frozen=True, slots=True)
class Pacing:
    first_byte_s: float = 0.0  # before anything is sent (fault: slow first byte)
    ttft_s: float = 0.0  # before the first frame
    per_token_s: float = 0.0  # between frames, per output token carried
    cut_after_chunks: int | None = None  # end the body after this many frames
    malformed: bool = False  # corrupt the JSON of the first content frame

    @property
    def instant(self) -> bool:
        return self.first_byte_s <= 0 and self.ttft_s <= 0 and self.per_token_s <= 0


def corrupt(data: bytes) -> bytes:
    """The same frame with its JSON cut in half (invalid), framing kept intact."""
    head, sep, rest = data.partition(b"data: ")
    if not sep:
        return data[: max(1, len(data) // 2)]
    payload = rest.rstrip(b"\r\n")
    return head + sep + payload[: max(1, len(payload) // 2)] + rest[len(payload) :]


def frames_to_send(plan: StreamPlan, pacing: Pacing) -> list[tuple[bytes, int]]:
    """(bytes, tokens) of each frame that will be sent, after cut and corruption."""
    frames = plan.frames
    if pacing.cut_after_chunks is not None:
        frames = frames[: pacing.cut_after_chunks]
    out = [(f.data, f.tokens) for f in frames]
    if pacing.malformed and out:
        i = next((k for k, (_, n) in enumerate(out) if n > 0), len(out) // 2)
        out[i] = (corrupt(out[i][0]), out[i][1])
    return out


async def paced_body(plan: StreamPlan, pacing: Pacing, clock: Clock) -> AsyncIterator[bytes]:
    frames = frames_to_send(plan, pacing)
    if pacing.instant:  # benchmarks: one write instead of one per frame
        yield b"".join((*plan.preamble, *(data for data, _ in frames)))
        return
    if pacing.first_byte_s > 0:
        await clock.sleep(pacing.first_byte_s)
    for data in plan.preamble:
        yield data
    if pacing.ttft_s > 0:
        await clock.sleep(pacing.ttft_s)
    for i, (data, tokens) in enumerate(frames):
        if i and tokens and pacing.per_token_s > 0:
            await clock.sleep(tokens * pacing.per_token_s)
        yield data
