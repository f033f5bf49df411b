"""A voice-conversion request's token stage: in place of T3, the source's speech tokens.

The source is tokenized piece by piece (:mod:`.source_tokens`) in the S3Gen loop's thread, where
S3Gen's tokenizer lives on the device: each piece is one call queued between S3Gen batches, so
it runs beside other requests' windows without a thread of its own. Each piece's tokens are
handed on in slices as T3's are (16 first, then ``audio_tokens_per_slice``) through the
request's bounded token queue, so the request's S3Gen stage decodes them window by window in the
engine's batches; a slow listener fills the queue and the next piece waits, and a cancel stops
this stage with the request's other. The first piece (at most 30 s of source) is the only one
tokenized before the first window.
"""

from __future__ import annotations

import asyncio
import time

import numpy as np

from ..items import End, StageError, Tokens
from ..model.loading import LoadedModel
from ..request_state import RequestState
from ..s3gen.batcher import S3GenBatcher
from ..t3.priority import FirstWindowPriority
from ..text.budgets import slice_size, window_size
from .source_tokens import SourceTokenizer, plan


class SourceStage:
    def __init__(
        self, model: LoadedModel, s3gen: S3GenBatcher, priority: FirstWindowPriority
    ) -> None:
        self.tokenizer = SourceTokenizer(model)
        self.s3gen = s3gen
        self.priority = priority

    async def run(self, request: RequestState, source: np.ndarray) -> None:
        try:
            await self._feed(request, source)
            request.stats.last_token = time.perf_counter()
            await request.tokens.put(End())
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # handed to the consumer, which re-raises it
            await request.tokens.put(StageError(error))

    async def _feed(self, request: RequestState, source: np.ndarray) -> None:
        self.s3gen.bind()
        mel = await self.s3gen.call(self.tokenizer.mel, source)
        for piece in plan(mel.shape[1]):
            tokens = await self.s3gen.call(self.tokenizer.tokens, mel, piece)
            await self._hand_on(request, tokens)

    async def _hand_on(self, request: RequestState, tokens: list[int]) -> None:
        params, stats = request.params, request.stats
        first = window_size(params, 0)
        while tokens:
            size = slice_size(params, stats.speech_tokens > 0)
            part, tokens = tokens[:size], tokens[size:]
            stats.speech_tokens += len(part)
            await request.tokens.put(Tokens(tuple(part)))
            self.priority.tokens_out(request.first_window, stats.speech_tokens, first)
