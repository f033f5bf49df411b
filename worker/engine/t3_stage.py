"""A request's T3 stage: its text chunks become sequences in the engine's T3 batch, and their
tokens go on to its S3Gen stage a slice at a time (:mod:`.items`), with a :class:`SpokenChunk`
after each chunk when the request wants timings.
"""

from __future__ import annotations

import asyncio
import random
import time

from .chunk_timer import SpokenChunk
from .items import Drain, End, SegmentEnd, StageError, Tokens
from .model.loading import LoadedModel
from .request_state import RequestState
from .t3.batcher import T3Batcher
from .t3.priority import FirstWindowPriority
from .t3.prompts import check_text_ids, prompt_overhead
from .t3.runner import T3Prompt
from .t3.sampling import sampling_config
from .t3.scheduler import T3Sequence
from .t3.token_buffer import TokenBuffer, drops_token_before_eos
from .text.budgets import slice_size, speech_room, token_budget, window_size
from .text.feed import FLUSH


class T3Stage:
    def __init__(
        self, model: LoadedModel, t3: T3Batcher, priority: FirstWindowPriority, context: int,
        speech_limit: int,
    ) -> None:  # fmt: skip
        self.model = model
        self.t3 = t3
        self.priority = priority
        self.context = context  # KV positions per slot
        self.speech_limit = speech_limit  # most speech tokens a chunk may have

    async def run(self, request: RequestState) -> None:
        out = request.tokens
        try:
            generator = random.Random(request.seed)
            while True:
                if not request.feed.has_ready():
                    await out.put(Drain())
                chunk = await request.feed.get()
                if chunk is None:
                    break
                if chunk is FLUSH:
                    await out.put(SegmentEnd())
                    continue
                assert isinstance(chunk, str)
                request.stats.text_chunks += 1
                await self._speak(request, chunk, generator)
            request.stats.last_token = time.perf_counter()
            await out.put(End())
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, which re-raises it
            await out.put(StageError(error))

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
                await request.tokens.put(Tokens(tuple(tokens)))
                first = window_size(params, 0)
                self.priority.tokens_out(request.first_window, stats.speech_tokens, first)
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
            runnable=lambda: buffer.wanted() and self.priority.may_run(request.first_window),
        )

    @staticmethod
    def _spoken(request: RequestState, text: str, sequence: T3Sequence, taken: int) -> SpokenChunk:
        request.chunks += 1
        return SpokenChunk(
            index=request.chunks - 1, text=text, source=getattr(text, "source", text),
            text_tokens=len(sequence.prompt.text_ids), positions=sequence.text_positions,
            tokens=taken,
        )  # fmt: skip
