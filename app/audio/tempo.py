"""Speed without a pitch change: FFmpeg's ``atempo`` filter (WSOLA) through PyAV, streaming.

``atempo`` takes factors from 0.5 to 100 per stage, so 0.25-0.5 is two stages of the square
root. It sits between the worker's PCM and the encoder, so every format gets it.
"""

from __future__ import annotations

from fractions import Fraction

import av
import av.filter
import numpy as np

from .encoding import Encoder

MIN_SPEED, MAX_SPEED = 0.25, 4.0


class TempoEncoder:
    """An encoder that changes the tempo of its input by ``speed`` before encoding it."""

    def __init__(self, inner: Encoder, speed: float, sample_rate: int) -> None:
        self.inner = inner
        self.media_type = inner.media_type
        self.rate = sample_rate
        self.pts = 0
        self.graph = av.filter.Graph()
        time_base = Fraction(1, sample_rate)
        node = self.graph.add_abuffer(
            format="s16", sample_rate=sample_rate, layout="mono", time_base=time_base
        )
        stages = 2 if speed < 0.5 else 1
        for _ in range(stages):
            stage = self.graph.add("atempo", f"{speed ** (1 / stages):.6f}")
            node.link_to(stage)
            node = stage
        sink = self.graph.add("abuffersink")
        node.link_to(sink)
        self.graph.configure()

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2")
        if not len(samples):
            return b""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.rate
        frame.pts = self.pts
        frame.time_base = Fraction(1, self.rate)
        self.pts += len(samples)
        self.graph.push(frame)
        return self.inner.encode(self._pull())

    def finish(self) -> bytes:
        self.graph.push(None)
        return self.inner.encode(self._pull()) + self.inner.finish()

    def _pull(self) -> bytes:
        out = []
        while True:
            try:
                frame = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
            out.append(frame.to_ndarray().reshape(-1).astype("<i2").tobytes())
        return b"".join(out)
