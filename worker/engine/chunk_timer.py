"""A request's timings, kept in step with its audio: which samples each chunk's tokens became.

The T3 stage tells the S3Gen stage, after a chunk's last token, what the chunk was
(:class:`SpokenChunk`); the S3Gen stage knows where those tokens fall in its stream, and the
:class:`ChunkTimer` where the stream falls in the request's audio. A speech token is exactly
960 samples of a stream; a stream's audio loses its first ``remove_leading_milliseconds`` and
its last ``remove_trailing_milliseconds``; crossfades move nothing; a stream after a flush
starts where the audio already sent ends; Turbo's closing silence tokens carry no text.

A chunk's timings are handed on before the audio past the chunk's end is made (S3Gen holds
back its last tokens' audio until more tokens or the end come), except that with a trailing
trim they wait for the next item, to know whether the stream ends with that chunk (then its
times stop where the trimmed audio does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from common.audio import SAMPLE_RATE

from .s3gen.stream import SAMPLES_PER_TOKEN
from .text.timings import ChunkTimings, Placement, char_spans, chunk_timings


@dataclass(frozen=True)
class SpokenChunk:
    """T3 -> S3Gen, after a chunk's tokens: what the chunk said and where T3 attended."""

    index: int  # the chunk's number in the request
    text: str  # what the model read (punc_norm's output)
    source: str  # the client's text of the chunk
    text_tokens: int
    positions: list[int]  # per speech token; empty: no attention, estimated
    tokens: int  # its speech tokens that reach S3Gen


class ChunkTimer:
    def __init__(
        self, tokenize: Callable[[str], list[int]], leading_trim_ms: int, trailing_trim_ms: int,
        closing_tokens: int,
    ) -> None:  # fmt: skip
        self.tokenize = tokenize
        self.lead = SAMPLE_RATE * leading_trim_ms // 1000
        self.trail = SAMPLE_RATE * trailing_trim_ms // 1000
        self.closing = closing_tokens
        self.sent = 0  # samples of the request's audio emitted so far
        self.stream_start = 0  # where the current stream's audio begins in the request's
        self._held: tuple[SpokenChunk, int] | None = None  # (chunk, its first stream token)

    def emitted(self, samples: int) -> None:
        self.sent += samples

    def new_stream(self) -> None:
        self.stream_start = self.sent

    def hold(self, chunk: SpokenChunk, stream_tokens: int) -> None:
        """``chunk``'s tokens end at token ``stream_tokens`` of the stream; :meth:`release`
        gives its timings (at once, unless :attr:`waits`)."""
        self._held = (chunk, stream_tokens - chunk.tokens)

    @property
    def holding(self) -> bool:
        return self._held is not None

    @property
    def waits(self) -> bool:
        """Whether a held chunk waits for the next item: whether its stream ends with it."""
        return self.trail > 0

    def release(self, stream_ends: bool) -> ChunkTimings | None:
        """The held chunk's timings; ``stream_ends``: its stream ends with it."""
        if self._held is None:
            return None
        (chunk, first), self._held = self._held, None
        ceiling = float("inf")
        if stream_ends:
            stream_samples = (first + chunk.tokens + self.closing) * SAMPLES_PER_TOKEN
            ceiling = self.stream_start + max(0, stream_samples - self.lead - self.trail)
        placement = Placement(
            offset=self.stream_start + first * SAMPLES_PER_TOKEN - self.lead,
            floor=self.stream_start,
            ceiling=ceiling,
        )
        spans, found_by = char_spans(
            chunk.text, chunk.text_tokens, chunk.positions, chunk.tokens, self.tokenize,
            SAMPLES_PER_TOKEN,
        )  # fmt: skip
        return chunk_timings(chunk.index, chunk.source, chunk.text, spans, placement, found_by)
