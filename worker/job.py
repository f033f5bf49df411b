"""One request's life in a worker: accept, stream audio under flow control, report the end.

Flow control is credit based: the job may send ``Job.credit`` audio messages ahead of what the
master has forwarded to the client; after that it waits for :class:`Credit`. Waiting here stops
pulling from the engine, whose bounded queues then pause T3 and S3Gen, so a slow client holds
at most ``credit`` chunks in the worker's outbox and a few more in the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
from pydantic import ValidationError

from common.audio import SAMPLE_RATE
from common.log_setup import request_id_var
from common.params import SynthesisParams
from common.protocol import (
    Audio,
    Done,
    ErrorCode,
    Failed,
    Job,
    Message,
    Started,
    TextPiece,
    Timings,
)
from common.timings import ChunkTimings
from common.validation import first_problem

from .engine.errors import EngineError, InvalidRequestError
from .engine.model.conditioning import VoiceConditioning
from .engine.pipeline import StreamingEngine, SynthesisStats
from .engine.request_state import PcmChunk
from .engine.text.feed import Item, TextCutter, TextFeed
from .voice_cache import VoiceCache, VoiceUnavailableError

log = logging.getLogger(__name__)
Send = Callable[[Message, bytes | None], Awaitable[None]]


class JobRun:
    """Runs one :class:`Job`; ``task`` is cancelled to cancel it."""

    def __init__(
        self, job: Job, engine: StreamingEngine, voices: VoiceCache, send: Send, worker_id: str,
        source: bytes | None = None,
    ) -> None:  # fmt: skip
        """``source``: a voice conversion's source (``Job.source_samples`` float32 samples)."""
        self.job = job
        self.source = source
        self.engine = engine
        self.voices = voices
        self.send = send
        self.worker_id = worker_id
        self.credits = asyncio.Semaphore(job.credit)
        self._inbox: list[TextPiece] = []  # text not cut yet (from before the feed opened too)
        self._text_waiting = asyncio.Event()
        self.stats = SynthesisStats()
        self.task: asyncio.Task[None] | None = None
        self._cutting: asyncio.Task[None] | None = None
        self.reported = False  # a Done or Failed went out; if not, the end was a cancel
        self._timings: list[ChunkTimings] = []  # made by the engine, not sent yet

    def add_text(self, piece: TextPiece) -> None:
        """Take a piece of a streaming job's text: queued here, cut into chunks off the event
        loop by :meth:`_cut_text` (text work there would hold up every other request)."""
        self._inbox.append(piece)
        self._text_waiting.set()

    def add_credit(self, chunks: int) -> None:
        for _ in range(chunks):
            self.credits.release()

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._cutting is not None:
                self._cutting.cancel()

    async def _cut_text(self, feed: TextFeed) -> None:
        """Feed what arrives to ``feed`` until it closes, each batch cut in a thread."""
        while not feed.closed:
            await self._text_waiting.wait()
            self._text_waiting.clear()
            batch, self._inbox = self._inbox, []
            feed.put(await asyncio.to_thread(cut_pieces, feed.cutter, batch))

    async def _run(self) -> None:
        request_id = self.job.request_id
        request_id_var.set(request_id)  # this task's log lines name the request
        log.info("started: voice %s", self.job.voice_id or "(built-in)")
        try:
            params = self.job.params
            voice = await self._voice()
            stream = await self._stream(params, voice)
        except (ValidationError, InvalidRequestError) as error:
            await self._fail("invalid_request", error)
            return
        except VoiceUnavailableError as error:
            await self._report(Failed(request_id=request_id, code=error.code, message=str(error)))
            return
        await self.send(
            Started(request_id=request_id, worker_id=self.worker_id, sample_rate=SAMPLE_RATE), None
        )
        try:
            async for chunk in stream:
                await self._send_timings()  # before the audio they come before
                await self.credits.acquire()
                header = Audio(request_id=request_id, seq=chunk.index)
                await self.send(header, chunk.to_int16_bytes())
            await self._send_timings()
            done = self.done(cancelled=False)
            log.info(
                "done: %.2f s of audio in %.0f ms, first audio after %s ms",
                done.audio_seconds,
                done.total_ms,
                "-" if done.first_audio_ms is None else f"{done.first_audio_ms:.0f}",
            )
            await self._report(done)
        except EngineError as error:
            await self._fail("invalid_request", error)
        except Exception:
            log.exception("request %s failed", request_id)
            message = "synthesis failed inside the worker; the error is in the server log"
            await self._report(
                Failed(request_id=request_id, code="internal_error", message=message)
            )

    async def _stream(
        self, params: SynthesisParams, voice: VoiceConditioning | None
    ) -> AsyncIterator[PcmChunk]:
        """The request's audio, its parameters checked (InvalidRequestError up front)."""
        if self.source is not None:
            source = np.frombuffer(self.source, dtype="<f4")
            return self.engine.convert(source, params, voice, self.stats)
        # Chunking counts the model's tokens (pkuseg for Chinese): off the event loop,
        # which every other stream of this worker shares.
        text = await asyncio.to_thread(self.engine.validate, self.job.text, params)
        if not text.closed:
            self._cutting = asyncio.create_task(self._cut_text(text))
        on_timings = self._timings.append if self.job.timings else None
        return await self.engine.synthesize(text, params, voice, self.stats, on_timings)

    async def _send_timings(self) -> None:
        while self._timings:
            chunk = self._timings.pop(0)
            await self.send(Timings(request_id=self.job.request_id, **dict(chunk)), None)

    async def _voice(self) -> VoiceConditioning | None:
        job = self.job
        if job.voice_id is None or job.voice_path is None or job.voice_hash is None:
            return None
        return await self.voices.get(job.voice_id, job.voice_path, job.voice_hash)

    async def _report(self, message: Done | Failed) -> None:
        self.reported = True
        await self.send(message, None)

    def done(self, cancelled: bool) -> Done:
        stats = self.stats
        first = stats.first_audio
        return Done(
            request_id=self.job.request_id,
            audio_seconds=stats.audio_seconds,
            first_audio_ms=None if first is None else (first - stats.started) * 1000,
            total_ms=(time.perf_counter() - stats.started) * 1000,
            speech_tokens=stats.speech_tokens,
            text_chunks=stats.text_chunks,
            cancelled=cancelled,
        )

    async def _fail(self, code: ErrorCode, error: Exception) -> None:
        field = getattr(error, "field", None)
        message = str(error)
        if isinstance(error, ValidationError):
            field, message = first_problem(error.errors())
        await self._report(
            Failed(request_id=self.job.request_id, code=code, message=message, field=field)
        )


def cut_pieces(cutter: TextCutter, pieces: list[TextPiece]) -> list[Item]:
    """The chunks ``pieces`` release, in order (run in a thread: the cutter is used by one
    call at a time). Text after the end is logged and ignored: the request is still fine."""
    items: list[Item] = []
    for piece in pieces:
        if cutter.closed:
            if piece.text:
                log.warning("request %s: text after the end of its input", piece.request_id)
            continue
        if piece.text:
            items += cutter.push(piece.text)
        if piece.end:
            items += cutter.close()
        elif piece.flush:
            items += cutter.flush()
    return items
