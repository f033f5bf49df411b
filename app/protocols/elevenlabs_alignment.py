"""Our per-chunk character times (``Timings``) as ElevenLabs' per-message ``alignment``.

A character goes out with the first audio message sent once both its time is known (its
chunk's Timings came) and the audio sent reaches its start. Each chunk is followed by a space
(at its end, lasting nothing), as ElevenLabs' alignment ends with the space its text ended with:
clients that split words on spaces (Pipecat, LiveKit) then neither join the last word of one
sentence to the next nor hold a chunk's last word back until the next chunk (Pipecat would give
a context's last word no time of its own).

Times are divided by the tempo (the worker's times are before the master's tempo). Two clocks,
as the two clients read them:

- relative (ElevenLabs' default): each message's times start at the end of the previous
  message's last character. Pipecat adds exactly that running offset, so its word times are the
  absolute ones.
- absolute (``sync_alignment=true``, as LiveKit asks): milliseconds from the context's first
  audio sample, used as given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from common.protocol import Timings


@dataclass
class _Chars:
    """Characters whose times are known and that have not gone out yet."""

    chars: list[str] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    clock: float = 0.0  # relative mode: the end of the last character sent

    def add(self, text: str, starts: list[float], ends: list[float], speed: float) -> None:
        self.chars.extend(text)
        self.starts.extend(s / speed for s in starts)
        self.ends.extend(e / speed for e in ends)
        if text and not text[-1].isspace():
            end = self.ends[-1]
            self.chars.append(" ")
            self.starts.append(end)
            self.ends.append(end)

    def take(self, until_ms: float | None, relative: bool) -> dict[str, Any] | None:
        """The characters starting before ``until_ms`` (None: all) as one alignment."""
        count = len(self.starts)
        if until_ms is not None:
            count = next((i for i, s in enumerate(self.starts) if s >= until_ms), count)
        if count == 0:
            return None
        base = self.clock if relative else 0.0
        starts = [max(0, round(s - base)) for s in self.starts[:count]]
        ends = [max(0, round(e - base)) for e in self.ends[:count]]
        alignment = {
            "chars": self.chars[:count],
            "charStartTimesMs": starts,
            "charDurationsMs": [max(0, e - s) for s, e in zip(starts, ends, strict=True)],
        }
        self.clock = self.ends[count - 1]
        del self.chars[:count], self.starts[:count], self.ends[:count]
        return alignment


class Aligner:
    """One context's alignment: fed its stream's Timings, asked per audio message."""

    def __init__(self, speed: float, relative: bool) -> None:
        self.speed = speed
        self.relative = relative
        self.seen = 0
        self.original = _Chars()
        self.normalized = _Chars()

    def feed(self, timings: Sequence[Timings]) -> None:
        """Take the Timings not seen yet (``timings``: the utterance's so far, in order)."""
        for chunk in timings[self.seen :]:
            self.original.add(chunk.text, chunk.char_start_ms, chunk.char_end_ms, self.speed)
            self.normalized.add(
                chunk.normalized_text,
                chunk.normalized_char_start_ms,
                chunk.normalized_char_end_ms,
                self.speed,
            )
        self.seen = len(timings)

    def message(self, audio_ms: float | None) -> dict[str, Any]:
        """``alignment`` and ``normalizedAlignment`` for a message whose audio ends at
        ``audio_ms`` (tempo applied); None: the context's last message, everything left."""
        return {
            "alignment": self.original.take(audio_ms, self.relative),
            "normalizedAlignment": self.normalized.take(audio_ms, self.relative),
        }
