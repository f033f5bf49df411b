"""One streaming request's state in the pipeline, and what it hands out: plain records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.audio import SAMPLE_RATE, int16_bytes
from common.params import SynthesisParams

from .chunk_timer import ChunkTimer
from .conditioning import VoiceConditioning
from .stats import SynthesisStats
from .text_feed import TextFeed


@dataclass
class PcmChunk:
    """Float32 mono PCM at 24 kHz, in order."""

    pcm: np.ndarray
    index: int
    sample_rate: int = SAMPLE_RATE

    def to_int16_bytes(self) -> bytes:
        return int16_bytes(self.pcm)


@dataclass(eq=False)
class RequestState:
    """One request's state in the pipeline: its inputs, its queues, its progress."""

    feed: TextFeed
    params: SynthesisParams
    voice: VoiceConditioning
    seed: int
    stats: SynthesisStats
    tokens: asyncio.Queue[Any]  # T3 -> S3Gen: token slices, then _END or an exception
    pcm: asyncio.Queue[Any]  # S3Gen -> consumer: float32 arrays, then _END or an exception
    first_window_done: bool = False  # S3Gen has decoded (or skipped) its first window
    timer: ChunkTimer | None = None  # with timings: where each chunk's audio lies
    chunks: int = 0  # text chunks spoken so far


@dataclass(frozen=True)
class QueueBounds:
    speech_tokens: int = 2
    pcm_chunks: int = 3
