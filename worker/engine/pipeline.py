"""The streaming pipeline: text chunks -> T3 token slices -> S3Gen PCM, stages overlapping.

Two producer tasks joined by bounded asyncio queues (``speech_token_queue_max`` and
``pcm_chunk_queue_max``): T3 moves on to the next text chunk while S3Gen still decodes the current
one, and a slow consumer holds both back instead of letting audio pile up. Model calls run in
threads (torch releases the GIL); each call is one slice, so cancellation takes effect within a
slice. Per-request state lives in the request's own objects; the shared model is read-only, so
one engine serves several requests at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch

from common.audio import SAMPLE_RATE, int16_bytes
from common.params import SynthesisParams
from common.variants import SUPPORTED_LANGUAGES, Variant

from .conditioning import VoiceConditioning
from .errors import InvalidRequestError
from .loading import LoadedModel
from .s3gen_stream import S3GenStream, StreamConfig
from .t3_stream import T3Stream
from .text_feed import FLUSH, TextFeed

T = TypeVar("T")
_END = object()
_DRAIN = object()  # T3 -> S3Gen: no more text for now, decode what you have
_SEGMENT_END = object()  # T3 -> S3Gen: the client flushed, finish this stretch of audio
# The first slice is short so audio starts early; later slices use audio_tokens_per_slice.
FIRST_SLICE_TOKENS = 16
MAX_WINDOW_GROWTH = 4


def slice_size(params: SynthesisParams, emitted_any: bool) -> int:
    if emitted_any:
        return params.audio_tokens_per_slice
    return min(params.audio_tokens_per_slice, FIRST_SLICE_TOKENS)


def window_size(params: SynthesisParams, window: int) -> int:
    """Tokens that S3Gen waits for before decoding window number ``window`` (from 0).

    Every window re-encodes the whole voice prompt (up to 10 s), a fixed cost per window. Once
    audio is flowing, playback has a growing lead, so windows double every two (up to 4x
    ``audio_tokens_per_slice``) and that cost is paid less often: 16, 35, 35, 70, 70, 140 ...
    The schedule depends on counts only, never on timing, so a seed reproduces the audio.
    """
    if window == 0:
        return slice_size(params, emitted_any=False)
    growth = min(2 ** ((window - 1) // 2), MAX_WINDOW_GROWTH)
    return params.audio_tokens_per_slice * growth


@dataclass
class PcmChunk:
    """Float32 mono PCM at 24 kHz, in order."""

    pcm: np.ndarray
    index: int
    sample_rate: int = SAMPLE_RATE

    def to_int16_bytes(self) -> bytes:
        return int16_bytes(self.pcm)


@dataclass
class SynthesisStats:
    """What one request did; filled in while it streams."""

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


@dataclass
class _Request:
    """One request's state in the pipeline: its inputs, its queues, its progress."""

    feed: TextFeed
    params: SynthesisParams
    voice: VoiceConditioning
    seed: int
    stats: SynthesisStats
    tokens: asyncio.Queue[Any]  # T3 -> S3Gen: token slices, then _END or an exception
    pcm: asyncio.Queue[Any]  # S3Gen -> consumer: float32 arrays, then _END or an exception
    first_audio: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class QueueBounds:
    speech_tokens: int = 2
    pcm_chunks: int = 3


class StreamingEngine:
    """Serves streaming synthesis requests on one loaded model."""

    def __init__(
        self,
        model: LoadedModel,
        bounds: QueueBounds | None = None,
        threads: int = 4,
    ) -> None:
        self.model = model
        self.bounds = bounds or QueueBounds()
        self.executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="engine")

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def validate(self, text: str | None, params: SynthesisParams) -> TextFeed:
        """Reject what can never succeed, before any audio is promised; return the text feed.

        ``text=None`` opens an empty feed for text that arrives later (:meth:`TextFeed.push`).
        """
        if self.model.variant is Variant.MULTILINGUAL:
            if not params.language or params.language.lower() not in SUPPORTED_LANGUAGES:
                raise InvalidRequestError(
                    "language",
                    f"language must be one of {', '.join(SUPPORTED_LANGUAGES)}, "
                    f"not {params.language!r}",
                )
        elif params.language and params.language.lower() != "en":
            raise InvalidRequestError(
                "language",
                f"{self.model.variant.value} speaks English only; language={params.language!r} "
                "needs the chatterbox-multilingual model",
            )
        if text is None:
            return TextFeed(params.text_processing_chunk_size)
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError("text", "text is empty")
        return TextFeed.whole(text, params.text_processing_chunk_size)

    def voice_or_default(self, voice: VoiceConditioning | None) -> VoiceConditioning:
        if voice is not None:
            return voice
        if self.model.builtin_voice is None:
            raise InvalidRequestError(
                "voice_id", f"no voice given and {self.model.checkpoint_dir} has no built-in voice"
            )
        return self.model.builtin_voice

    async def synthesize(
        self,
        text: str | TextFeed,
        params: SynthesisParams | None = None,
        voice: VoiceConditioning | None = None,
        stats: SynthesisStats | None = None,
    ) -> AsyncIterator[PcmChunk]:
        """Stream the speech of ``text`` as PCM chunks. Raises InvalidRequestError up front.

        ``text`` is a whole text, or a :class:`TextFeed` (from ``validate(None, params)``) that
        the caller keeps pushing text into: speech starts with its first complete sentence.
        """
        params = params or SynthesisParams()
        feed = text if isinstance(text, TextFeed) else self.validate(text, params)
        voice = self.voice_or_default(voice)
        return self._stream(feed, params, voice, stats or SynthesisStats())

    async def _stream(
        self,
        feed: TextFeed,
        params: SynthesisParams,
        voice: VoiceConditioning,
        stats: SynthesisStats,
    ) -> AsyncIterator[PcmChunk]:
        request = _Request(
            feed=feed,
            params=params,
            voice=voice,
            seed=params.seed if params.seed is not None else random.randrange(2**62),
            stats=stats,
            tokens=asyncio.Queue(self.bounds.speech_tokens),
            pcm=asyncio.Queue(self.bounds.pcm_chunks),
        )
        tasks = [
            asyncio.create_task(self._t3_stage(request)),
            asyncio.create_task(self._s3gen_stage(request)),
        ]
        try:
            index = 0
            while (item := await request.pcm.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                if stats.first_audio is None:
                    stats.first_audio = time.perf_counter()
                stats.pcm_chunks += 1
                stats.samples += len(item)
                yield PcmChunk(item, index)
                index += 1
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def _t3_stage(self, request: _Request) -> None:
        params, stats, out = request.params, request.stats, request.tokens
        try:
            generator = torch.Generator(device=self.model.t3.device).manual_seed(request.seed)
            cond = request.voice.t3_cond_for(params.exaggeration, self.model.dtype)
            while True:
                if not request.feed.has_ready():
                    await out.put(_DRAIN)  # the text source is slower than speech
                chunk = await request.feed.get()
                if chunk is None:
                    break
                if chunk is FLUSH:
                    await out.put(_SEGMENT_END)
                    continue
                assert isinstance(chunk, str)
                stats.text_chunks += 1
                stream = await self._run(T3Stream, self.model, cond, chunk, params, generator)
                while not stream.done:
                    size = slice_size(params, stats.speech_tokens > 0)
                    slice_ = await self._run(stream.next_tokens, size)
                    stats.speech_tokens += len(slice_)
                    if slice_:
                        await out.put(slice_)
                    # Once S3Gen has its first window's tokens, it has the device to itself until
                    # the first audio is out: first audio matters more than T3 running ahead.
                    if stats.speech_tokens >= window_size(params, 0):
                        await request.first_audio.wait()
            stats.last_token = time.perf_counter()
            await out.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, which re-raises it
            await out.put(error)

    async def _s3gen_stage(self, request: _Request) -> None:
        try:
            stream = await self._run(S3GenStream, self.model, request.voice, self._config(request))
            pending: list[int] = []
            while (item := await request.tokens.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                if item is _SEGMENT_END:
                    if stream.tokens or pending:
                        await self._decode(request, stream, pending, final=True)
                        stream = await self._run(
                            S3GenStream, self.model, request.voice, self._config(request)
                        )
                    pending = []
                elif item is _DRAIN:
                    if pending:
                        await self._decode(request, stream, pending)
                    pending = []
                else:
                    pending.extend(item)
                    # Windows fall at fixed token counts, never where timing happens to put
                    # them, so a seed reproduces a request exactly, alone or beside others.
                    window = window_size(request.params, stream.windows)
                    if stream.pending_tokens + len(pending) >= window:
                        await self._decode(request, stream, pending)
                        pending = []
            await self._decode(request, stream, pending, final=True)
            await request.pcm.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            await request.pcm.put(error)
        finally:
            request.first_audio.set()

    @staticmethod
    def _config(request: _Request) -> StreamConfig:
        params = request.params
        return StreamConfig(
            overlap=params.chunk_overlap_method,
            crossfade_ms=params.crossfade_duration_milliseconds,
            leading_trim_ms=params.remove_leading_milliseconds,
            trailing_trim_ms=params.remove_trailing_milliseconds,
            seed=request.seed,
        )

    async def _decode(
        self, request: _Request, stream: S3GenStream, tokens: list[int], final: bool = False
    ) -> None:
        pcm = await self._run(stream.push, tokens, final)
        if len(pcm):
            await request.pcm.put(pcm)
        if stream.emitted > 0:
            request.first_audio.set()
