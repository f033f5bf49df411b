"""The streaming pipeline: text chunks -> T3 token slices -> S3Gen PCM, stages overlapping, and
the model work of every request batched with the others'.

Each request runs two small stages of its own, joined by bounded asyncio queues
(``speech_token_queue_max`` and ``pcm_chunk_queue_max``): its T3 stage moves on to the next text
chunk while its S3Gen stage still decodes the current one, and a slow consumer holds both back
instead of letting audio pile up. The model calls themselves go to the engine's two batch loops
(:mod:`.t3.batcher`, :mod:`.s3gen.batcher`), which step every live request's T3 sequence in one
batch and decode waiting S3Gen windows together, so a device serves many requests at the cost
of a few. Per-request state lives in the request's own objects; the model is read-only.

The stages themselves are :mod:`.t3_stage` and :mod:`.s3gen_stage`; they pass typed items
(:mod:`.items`), and T3 yields to first windows by :mod:`.t3.priority`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import numpy as np

from common.params import SynthesisParams
from common.settings import KV_CACHE_TOKENS
from common.timings import ChunkTimings
from common.variants import SUPPORTED_LANGUAGES, Variant

from .chunk_timer import ChunkTimer
from .errors import InvalidRequestError
from .items import End, Pcm, StageError
from .model.conditioning import VoiceConditioning
from .model.loading import LoadedModel
from .model_loop import ready_for_loops
from .request_state import PcmChunk, QueueBounds, RequestState
from .s3gen.batcher import S3GenBatcher
from .s3gen_stage import S3GenStage
from .stats import SynthesisStats
from .t3.alignment_probe import Head
from .t3.batcher import T3Batcher
from .t3.priority import FirstWindowPriority
from .t3.prompts import prompt_overhead
from .t3_stage import T3Stage
from .text.budgets import speech_room
from .text.chunking import ChunkLimit
from .text.feed import TextFeed
from .text.punctuation import punc_norm
from .vc.source_tokens import MEL_HOP
from .vc.stage import SourceStage

DEFAULT_SLOTS = 8
DEFAULT_MAX_WINDOWS = 16
CPU_FIRST_WINDOWS = 1
CONVERSION_REFUSED = (
    "{} cannot convert voices: voice conversion runs on the English or multilingual S3Gen "
    "(MODEL_VARIANT=chatterbox or chatterbox-multilingual)"
)


class StreamingEngine:
    """Serves streaming synthesis requests on one loaded model."""

    def __init__(
        self,
        model: LoadedModel,
        bounds: QueueBounds | None = None,
        slots: int = DEFAULT_SLOTS,
        context: int = KV_CACHE_TOKENS,
        max_windows: int = DEFAULT_MAX_WINDOWS,
        first_windows: int | None = None,
        threads: int | None = None,
        batch_invariant: bool = False,
        cuda_graphs: bool = True,
        alignment_heads: tuple[Head, ...] | None = None,
        s3gen_dtype: str = "float32",
    ) -> None:
        """``slots``: T3 sequences stepped together (more wait their turn); ``context``: KV
        positions per slot; ``max_windows``: S3Gen windows decoded together; ``first_windows``:
        at most this many first windows (of requests with no audio yet) in one batch. On a CPU
        a batch takes time in proportion to its size, so first windows go one at a time (the
        lowest median time to first audio); on a GPU all at once. ``threads``: torch's CPU
        threads for the model calls (default: the calling thread's). ``batch_invariant``: a
        request's T3 logits are bit for bit what they are alone (see :class:`T3Runner`).
        ``cuda_graphs``: on CUDA, T3 decode steps and S3Gen windows replay captured graphs
        (ignored on a CPU). ``s3gen_dtype``: S3Gen's compute dtype (``S3GEN_DTYPE``).
        ``alignment_heads``: T3's (layer, head) pairs that timings read (see :class:`T3Runner`)."""
        self.model = model
        self.slots = slots
        self.bounds = bounds or QueueBounds()
        self.t3 = T3Batcher(
            model, slots, context, threads, batch_invariant, cuda_graphs, alignment_heads
        )
        if first_windows is None:
            first_windows = max_windows if model.device.type == "cuda" else CPU_FIRST_WINDOWS
        self.s3gen = S3GenBatcher(
            model, max_windows, first_windows, threads, cuda_graphs, s3gen_dtype
        )
        self.context = context
        self.prompt_overhead = prompt_overhead(model)  # chunks are cut to fit any voice
        self.speech_limit = model.t3.hp.max_speech_tokens - 4
        priority = FirstWindowPriority(self.t3.wake)
        self._t3_stage = T3Stage(model, self.t3, priority, context, self.speech_limit)
        self._s3gen_stage = S3GenStage(model, self.s3gen, priority)
        self._source_stage = SourceStage(model, self.s3gen, priority)
        ready_for_loops(model.device)  # the buffers just made, before the loops' streams use them

    def close(self) -> None:
        self.t3.close()
        self.s3gen.close()

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
        limit = self.chunk_limit(params)
        if text is None:
            return TextFeed(limit)
        if not isinstance(text, str) or not text.strip():
            raise InvalidRequestError("text", "text is empty")
        return TextFeed.whole(text, limit)

    def chunk_limit(self, params: SynthesisParams) -> ChunkLimit:
        """What one chunk of a request may hold: its prompt (in tokens of the model's own
        tokenizer, for the request's language) and its whole speech budget fit a slot."""
        model, language = self.model, params.language
        return ChunkLimit(
            max_chars=params.text_processing_chunk_size,
            room=speech_room(self.context, self.prompt_overhead),
            count=lambda chunk: len(model.tokenize(chunk, language)),
            normalize=lambda chunk: punc_norm(chunk, model.variant),
            model_limit=self.speech_limit,
        )

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
        on_timings: Callable[[ChunkTimings], None] | None = None,
    ) -> AsyncIterator[PcmChunk]:
        """Stream the speech of ``text`` as PCM chunks. Raises InvalidRequestError up front.

        ``text`` is a whole text, or a :class:`TextFeed` (from ``validate(None, params)``) that
        the caller keeps pushing text into: speech starts with its first complete sentence.
        ``on_timings`` is given each chunk's timings (:mod:`.chunk_timer`) between the chunks
        of PCM, before any PCM past that chunk's end.
        """
        params = params or SynthesisParams()
        feed = text if isinstance(text, TextFeed) else self.validate(text, params)
        voice = self.voice_or_default(voice)
        return self._stream(feed, params, voice, stats or SynthesisStats(), on_timings)

    def convert(
        self,
        source: np.ndarray,
        params: SynthesisParams | None = None,
        voice: VoiceConditioning | None = None,
        stats: SynthesisStats | None = None,
    ) -> AsyncIterator[PcmChunk]:
        """Voice conversion: ``source`` (mono float32 at 16 kHz) re-spoken in ``voice`` (else the
        built-in one), streamed as PCM chunks. Raises InvalidRequestError up front.

        Upstream's ``ChatterboxVC.generate`` without the watermark: the source's speech tokens
        from S3Gen's own tokenizer (:mod:`.vc`), decoded by the same windowed S3Gen stream as
        speech, in the same batches."""
        if self.model.variant.turbo_family:
            raise InvalidRequestError("model", CONVERSION_REFUSED.format(self.model.variant.value))
        source = np.asarray(source, dtype=np.float32)
        if source.ndim != 1 or len(source) < MEL_HOP * 4 or not np.isfinite(source).all():
            raise InvalidRequestError(
                "audio", "the source must be mono audio of at least 40 ms, finite samples"
            )
        params = params or SynthesisParams()
        request = self._request(TextFeed(self.chunk_limit(params)), params, voice, stats, None)
        stages = [lambda: self._source_stage.run(request, source),
                  lambda: self._s3gen_stage.run(request)]  # fmt: skip
        return self._consume(request, stages, None)

    async def _stream(
        self,
        feed: TextFeed,
        params: SynthesisParams,
        voice: VoiceConditioning,
        stats: SynthesisStats,
        on_timings: Callable[[ChunkTimings], None] | None,
    ) -> AsyncIterator[PcmChunk]:
        request = self._request(feed, params, voice, stats, on_timings)
        stages = [lambda: self._t3_stage.run(request), lambda: self._s3gen_stage.run(request)]
        async for chunk in self._consume(request, stages, on_timings):
            yield chunk

    def _request(
        self,
        feed: TextFeed,
        params: SynthesisParams,
        voice: VoiceConditioning | None,
        stats: SynthesisStats | None,
        on_timings: Callable[[ChunkTimings], None] | None,
    ) -> RequestState:
        return RequestState(
            feed=feed,
            params=params,
            voice=self.voice_or_default(voice),
            seed=params.seed if params.seed is not None else random.randrange(2**62),
            stats=stats or SynthesisStats(),
            tokens=asyncio.Queue(self.bounds.speech_tokens),
            pcm=asyncio.Queue(self.bounds.pcm_chunks),
            timer=None if on_timings is None else self._timer(params),
        )

    async def _consume(
        self,
        request: RequestState,
        stages: list[Callable[[], Coroutine[Any, Any, None]]],
        on_timings: Callable[[ChunkTimings], None] | None,
    ) -> AsyncIterator[PcmChunk]:
        """Run the request's two stages; its PCM as it comes. Closing the iterator (or
        cancelling its consumer) cancels both stages."""
        stats = request.stats
        tasks = [asyncio.create_task(stage()) for stage in stages]
        try:
            index = 0
            while not isinstance(item := await request.pcm.get(), End):
                match item:
                    case StageError(error):
                        raise error
                    case ChunkTimings():
                        assert on_timings is not None
                        on_timings(item)
                    case Pcm(samples):
                        if stats.first_audio is None:
                            stats.first_audio = time.perf_counter()
                        stats.pcm_chunks += 1
                        stats.samples += len(samples)
                        yield PcmChunk(samples, index)
                        index += 1
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.gather(*tasks, return_exceptions=True)

    def _timer(self, params: SynthesisParams) -> ChunkTimer:
        closing = 3 if self.model.variant.turbo_family else 0  # S3GenStream's silence tokens
        return ChunkTimer(
            lambda text: self.model.tokenize(text, params.language),
            params.remove_leading_milliseconds, params.remove_trailing_milliseconds, closing,
        )  # fmt: skip
