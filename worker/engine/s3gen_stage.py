"""A request's S3Gen stage: the token slices from its T3 stage decoded, window by window in the
engine's S3Gen batch, into PCM for the consumer, with each chunk's timings (:mod:`.chunk_timer`)
between the PCM, before any audio past the chunk's end.
"""

from __future__ import annotations

import asyncio

from .chunk_timer import SpokenChunk
from .items import Drain, End, Pcm, SegmentEnd, StageError, TokenItem, Tokens
from .model.loading import LoadedModel
from .request_state import RequestState
from .s3gen.batcher import S3GenBatcher
from .s3gen.stream import S3GenStream, StreamConfig
from .t3.priority import FirstWindowPriority
from .text.budgets import window_size


class S3GenStage:
    def __init__(
        self, model: LoadedModel, s3gen: S3GenBatcher, priority: FirstWindowPriority
    ) -> None:
        self.model = model
        self.s3gen = s3gen
        self.priority = priority

    async def run(self, request: RequestState) -> None:
        try:
            await self._decode_all(request)
            await request.pcm.put(End())
        except asyncio.CancelledError:
            raise
        except BaseException as error:
            await request.pcm.put(StageError(error))
        finally:
            self.priority.decoded(request.first_window)

    async def _decode_all(self, request: RequestState) -> None:
        stream = self._stream(request)
        pending: list[int] = []
        while not isinstance(item := await request.tokens.get(), End):
            if isinstance(item, StageError):
                raise item.error
            if isinstance(item, SpokenChunk):
                await self._chunk_spoken(request, item, len(stream.tokens) + len(pending))
                continue
            await self._release_timings(request, stream_ends=isinstance(item, SegmentEnd))
            stream, pending = await self._take(request, stream, pending, item)
        await self._release_timings(request, stream_ends=True)
        await self._decode(request, stream, pending, final=True)

    async def _take(
        self, request: RequestState, stream: S3GenStream, pending: list[int], item: TokenItem
    ) -> tuple[S3GenStream, list[int]]:
        """Take ``item`` into ``stream``: the stream and the tokens still pending after it."""
        match item:
            case SegmentEnd() if stream.tokens or pending:
                await self._decode(request, stream, pending, final=True)
                if request.timer is not None:
                    request.timer.new_stream()
                return self._stream(request), []
            case Drain() if pending:
                await self._decode(request, stream, pending)
                return stream, []
            case Tokens(tokens):
                pending.extend(tokens)
                # Windows fall at fixed token counts, never where timing happens to put them,
                # so a seed reproduces a request exactly, alone or beside others.
                window = window_size(request.params, stream.windows)
                if stream.pending_tokens + len(pending) >= window:
                    await self._decode(request, stream, pending)
                    return stream, []
        return stream, pending

    def _stream(self, request: RequestState) -> S3GenStream:
        params = request.params
        config = StreamConfig(
            overlap=params.chunk_overlap_method,
            crossfade_ms=params.crossfade_duration_milliseconds,
            leading_trim_ms=params.remove_leading_milliseconds,
            trailing_trim_ms=params.remove_trailing_milliseconds,
            seed=request.seed,
        )
        return S3GenStream(self.model, request.voice, config)

    async def _decode(
        self, request: RequestState, stream: S3GenStream, tokens: list[int], final: bool = False
    ) -> None:
        pcm = await self.s3gen.decode(stream, tokens, request.stats, final)
        if request.timer is not None:
            request.timer.emitted(len(pcm))
        if len(pcm):
            await request.pcm.put(Pcm(pcm))
        self.priority.decoded(request.first_window)

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
