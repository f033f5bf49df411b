"""One text chunk's times in its request's audio: made by the engine, sent as the protocol's
``Timings`` (the same record with its request id), read by the master's adapters.

Milliseconds from the first sample of the request's audio as the worker sends it (trims and
flushes accounted for; the master's tempo is not: divide by it). ``source``, per chunk:
``attention`` (T3's alignment heads: English, multilingual, Turbo) or ``estimate`` (by each
script's speaking rate: Nano, a model without its heads, or a chunk whose attention path was
degenerate). The full contract: docs/ENGINE.md, "Timings".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Source = Literal["attention", "estimate"]  # how a chunk's times were found (wire names)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimedWord(_Record):
    word: str
    start_ms: float
    end_ms: float
    char_start: int  # [char_start, char_end) in the chunk's client text
    char_end: int


class ChunkTimings(_Record):
    chunk: int
    source: Source
    text: str  # the chunk as the client sent it (whitespace collapsed)
    char_start_ms: list[float]
    char_end_ms: list[float]
    normalized_text: str  # what the model read (punc_norm)
    normalized_char_start_ms: list[float]
    normalized_char_end_ms: list[float]
    words: list[TimedWord]
    start_ms: float  # the first normalized character's start
    end_ms: float  # the last normalized character's end
