"""One streaming request's state in the pipeline, and what it hands out: plain records."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from common.audio import SAMPLE_RATE, int16_bytes
from common.params import SynthesisParams

from .chunk_timer import ChunkTimer
from .items import PcmItem, TokenItem
from .model.conditioning import VoiceConditioning
from .stats import SynthesisStats
from .t3.priority import FirstWindow
from .text.feed import TextFeed


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
    tokens: asyncio.Queue[TokenItem]  # T3 -> S3Gen
    pcm: asyncio.Queue[PcmItem]  # S3Gen -> consumer
    first_window: FirstWindow = field(default_factory=FirstWindow)
    timer: ChunkTimer | None = None  # with timings: where each chunk's audio lies
    chunks: int = 0  # text chunks spoken so far


@dataclass(frozen=True)
class QueueBounds:
    speech_tokens: int = 2
    pcm_chunks: int = 3
