"""What one request did, filled in while it streams (the CLI's ``--json`` report comes from it)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.audio import SAMPLE_RATE


@dataclass
class SynthesisStats:
    text_chunks: int = 0
    speech_tokens: int = 0
    pcm_chunks: int = 0
    samples: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_audio: float | None = None
    last_token: float | None = None

    @property
    def audio_seconds(self) -> float:
        return self.samples / SAMPLE_RATE

    def runs_dry_at(self) -> float | None:
        """When a listener playing in real time since the first audio would run out of it."""
        return None if self.first_audio is None else self.first_audio + self.audio_seconds
