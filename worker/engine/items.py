"""What a request's two stages hand on, as typed items: T3 -> S3Gen on the request's token
queue, S3Gen -> the consumer on its PCM queue. Each queue ends with :class:`End`, or with a
:class:`StageError` the consumer re-raises.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.timings import ChunkTimings

from .chunk_timer import SpokenChunk


@dataclass(frozen=True)
class Tokens:
    """A slice of a chunk's speech tokens."""

    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Drain:
    """No more text for now (the text source is slower than speech): decode what is there."""


@dataclass(frozen=True)
class SegmentEnd:
    """The client flushed: finish this stretch of audio; what follows starts a new one."""


@dataclass(frozen=True)
class Pcm:
    """Float32 mono PCM at 24 kHz, the next of the request's audio."""

    samples: np.ndarray


@dataclass(frozen=True)
class End:
    """The stage is done: nothing follows."""


@dataclass(frozen=True)
class StageError:
    """The error that ended the stage; nothing follows."""

    error: BaseException


TokenItem = Tokens | SpokenChunk | Drain | SegmentEnd | End | StageError
PcmItem = Pcm | ChunkTimings | End | StageError
