"""The streaming pipeline: text chunks -> T3 token slices -> S3Gen PCM, stages overlapping, and
the model work of every request batched with the others'.

Each request runs two small stages of its own, joined by bounded asyncio queues
(``speech_token_queue_max`` and ``pcm_chunk_queue_max``): its T3 stage moves on to the next text
chunk while its S3Gen stage still decodes the current one, and a slow consumer holds both back
instead of letting audio pile up. The model calls themselves go to the engine's two batch loops
(:mod:`t3_batcher`, :mod:`s3gen_batcher`), which step every live request's T3 sequence in one
batch and decode waiting S3Gen windows together, so a device serves many requests at the cost
of a few. Per-request state lives in the request's own objects; the model is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable

from common.params import SynthesisParams
from common.settings import KV_CACHE_TOKENS
from common.variants import SUPPORTED_LANGUAGES, Variant

from .alignment_probe import Head
from .budgets import slice_size, speech_room, token_budget, window_size
from .chunk_timer import ChunkTimer, SpokenChunk
from .conditioning import VoiceConditioning
from .errors import InvalidRequestError
from .loading import LoadedModel
from .model_loop import ready_for_loops
from .prompts import check_text_ids, prompt_overhead
from .punctuation import punc_norm
from .request_state import PcmChunk, QueueBounds, RequestState
from .s3gen_batcher import S3GenBatcher
from .s3gen_stream import S3GenStream, StreamConfig
from .sampling import sampling_config
from .stats import SynthesisStats
from .t3_batcher import T3Batcher, TokenBuffer, drops_token_before_eos
from .t3_runner import T3Prompt
from .t3_scheduler import T3Sequence
from .text import ChunkLimit
from .text_feed import FLUSH, TextFeed
from .timings import ChunkTimings

_END = object()
_DRAIN = object()  # T3 -> S3Gen: no more text for now, decode what you have
_SEGMENT_END = object()  # T3 -> S3Gen: the client flushed, finish this stretch of audio
DEFAULT_SLOTS = 8
DEFAULT_MAX_WINDOWS = 16
CPU_FIRST_WINDOWS = 1


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
    ) -> None:
        """``slots``: T3 sequences stepped together (more wait their turn); ``context``: KV
        positions per slot; ``max_windows``: S3Gen windows decoded together; ``first_windows``:
        at most this many first windows (of requests with no audio yet) in one batch. On a CPU
        a batch takes time in proportion to its size, so first windows go one at a time (the
        lowest median time to first audio); on a GPU all at once. ``threads``: torch's CPU
        threads for the model calls (default: the calling thread's). ``batch_invariant``: a
        request's T3 logits are bit for bit what they are alone (see :class:`T3Runner`).
        ``cuda_graphs``: on CUDA, T3 decode steps replay captured graphs (ignored on a CPU).
        ``alignment_heads``: T3's (layer, head) pairs that timings read (see :class:`T3Runner`)."""
        self.model = model
        self.slots = slots
        self.bounds = bounds or QueueBounds()
        self.t3 = T3Batcher(
            model, slots, context, threads, batch_invariant, cuda_graphs, alignment_heads
        )
        # Requests whose first window's tokens are out and whose first window is not decoded yet.
        self._awaiting_first: set[RequestState] = set()
        if first_windows is None:
            first_windows = max_windows if model.device.type == "cuda" else CPU_FIRST_WINDOWS
        self.s3gen = S3GenBatcher(model, max_windows, first_windows, threads)
        self.context = context
        self.prompt_overhead = prompt_overhead(model)  # chunks are cut to fit any voice
        self.speech_limit = model.t3.hp.max_speech_tokens - 4
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
        ``on_timings`` is given each chunk's timings (:mod:`chunk_timer`) between the chunks
        of PCM, before any PCM past that chunk's end.
        """
        params = params or SynthesisParams()
        feed = text if isinstance(text, TextFeed) else self.validate(text, params)
        voice = self.voice_or_default(voice)
        return self._stream(feed, params, voice, stats or SynthesisStats(), on_timings)

    async def _stream(
        self,
        feed: TextFeed,
        params: SynthesisParams,
        voice: VoiceConditioning,
        stats: SynthesisStats,
        on_timings: Callable[[ChunkTimings], None] | None,
    ) -> AsyncIterator[PcmChunk]:
        request = RequestState(
            feed=feed,
            params=params,
            voice=voice,
            seed=params.seed if params.seed is not None else random.randrange(2**62),
            stats=stats,
            tokens=asyncio.Queue(self.bounds.speech_tokens),
            pcm=asyncio.Queue(self.bounds.pcm_chunks),
            timer=None if on_timings is None else self._timer(params),
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
                if isinstance(item, ChunkTimings):
                    assert on_timings is not None
                    on_timings(item)
                    continue
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

    async def _t3_stage(self, request: RequestState) -> None:
        out = request.tokens
        try:
            generator = random.Random(request.seed)
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
                request.stats.text_chunks += 1
                await self._speak(request, chunk, generator)
            request.stats.last_token = time.perf_counter()
            await out.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, which re-raises it
            await out.put(error)

    async def _speak(self, request: RequestState, text: str, generator: random.Random) -> None:
        """Generate one chunk's tokens in the T3 batch, handing them on a slice at a time."""
        params, stats = request.params, request.stats
        drop = drops_token_before_eos(self.model.variant)
        buffer = TokenBuffer(params.audio_tokens_per_slice, self.t3.wake, drop_before_eos=drop)
        sequence = await self._sequence(request, text, generator, buffer)
        self.t3.add(sequence)
        taken = 0
        try:
            while tokens := await buffer.take(slice_size(params, stats.speech_tokens > 0)):
                stats.speech_tokens += len(tokens)
                taken += len(tokens)
                await request.tokens.put(tokens)
                if stats.speech_tokens >= window_size(params, 0) and not request.first_window_done:
                    self._awaiting_first.add(request)
        finally:
            if not sequence.finished:
                self.t3.cancel(sequence)
        if request.timer is not None:
            await request.tokens.put(self._spoken(request, text, sequence, taken))

    async def _sequence(
        self, request: RequestState, text: str, generator: random.Random, buffer: TokenBuffer
    ) -> T3Sequence:
        model, params = self.model, request.params
        ids = await asyncio.to_thread(model.tokenize, text, params.language)
        check_text_ids(ids, model.t3.hp.text_tokens_dict_size)
        prompt_length = prompt_overhead(model, request.voice) + len(ids)
        if params.fixed_token_count is None:
            budget = token_budget(text, self.speech_limit)  # the chunk was cut to fit
        else:  # a benchmark's fixed count, cut to what the slot holds
            room = speech_room(self.context, prompt_length)
            budget = min(params.fixed_token_count, self.speech_limit, room)
        return T3Sequence(
            prompt=T3Prompt(request.voice, params.exaggeration, ids),
            prompt_length=prompt_length,
            budget=budget,
            sampling=sampling_config(model.variant, params),
            cfg_weight=0.0 if model.variant.turbo_family else params.cfg_weight,
            ignore_eos=params.fixed_token_count is not None,
            generator=generator,
            on_tokens=buffer.push,
            on_error=buffer.fail,
            runnable=lambda: buffer.wanted() and self._may_run(request),
        )

    def _may_run(self, request: RequestState) -> bool:
        """First audio before anything else: once a request has its first window's tokens, T3
        pauses it, and pauses every request past its first window, until every such first
        window is decoded; S3Gen then has the device to itself for those windows."""
        if request.first_window_done:
            return not self._awaiting_first
        return request not in self._awaiting_first

    def _first_window_done(self, request: RequestState) -> None:
        request.first_window_done = True
        if request in self._awaiting_first:
            self._awaiting_first.discard(request)
            self.t3.wake()

    async def _s3gen_stage(self, request: RequestState) -> None:
        try:
            stream = S3GenStream(self.model, request.voice, self._config(request))
            pending: list[int] = []
            while (item := await request.tokens.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, SpokenChunk):
                    await self._chunk_spoken(request, item, len(stream.tokens) + len(pending))
                    continue
                await self._release_timings(request, stream_ends=item is _SEGMENT_END)
                if item is _SEGMENT_END:
                    if stream.tokens or pending:
                        await self._decode(request, stream, pending, final=True)
                        stream = S3GenStream(self.model, request.voice, self._config(request))
                        if request.timer is not None:
                            request.timer.new_stream()
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
            await self._release_timings(request, stream_ends=True)
            await self._decode(request, stream, pending, final=True)
            await request.pcm.put(_END)
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            await request.pcm.put(error)
        finally:
            self._first_window_done(request)

    @staticmethod
    def _config(request: RequestState) -> StreamConfig:
        params = request.params
        return StreamConfig(
            overlap=params.chunk_overlap_method,
            crossfade_ms=params.crossfade_duration_milliseconds,
            leading_trim_ms=params.remove_leading_milliseconds,
            trailing_trim_ms=params.remove_trailing_milliseconds,
            seed=request.seed,
        )

    async def _decode(
        self, request: RequestState, stream: S3GenStream, tokens: list[int], final: bool = False
    ) -> None:
        pcm = await self.s3gen.decode(stream, tokens, request.stats, final)
        if request.timer is not None:
            request.timer.emitted(len(pcm))
        if len(pcm):
            await request.pcm.put(pcm)
        if not request.first_window_done:
            self._first_window_done(request)

    # --- timings (chunk_timer) ------------------------------------------------------------------

    def _timer(self, params: SynthesisParams) -> ChunkTimer:
        closing = 3 if self.model.variant.turbo_family else 0  # S3GenStream's silence tokens
        return ChunkTimer(
            lambda text: self.model.tokenize(text, params.language),
            params.remove_leading_milliseconds, params.remove_trailing_milliseconds, closing,
        )  # fmt: skip

    def _spoken(
        self, request: RequestState, text: str, sequence: T3Sequence, taken: int
    ) -> SpokenChunk:
        request.chunks += 1
        return SpokenChunk(
            index=request.chunks - 1, text=text, source=getattr(text, "source", text),
            text_tokens=len(sequence.prompt.text_ids), positions=sequence.text_positions,
            tokens=taken,
        )  # fmt: skip

    async def _chunk_spoken(self, request: RequestState, chunk: SpokenChunk, tokens: int) -> None:
        assert request.timer is not None
        request.timer.hold(chunk, tokens)
        if not request.timer.waits:
            await self._release_timings(request, stream_ends=False)

    async def _release_timings(self, request: RequestState, stream_ends: bool) -> None:
        """Hand on the held chunk's timings (made off the event loop: they tokenize)."""
        if request.timer is not None and request.timer.holding:
            timings = await asyncio.to_thread(request.timer.release, stream_ends)
            if timings is not None:
                await request.pcm.put(timings)
