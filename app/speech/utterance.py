"""One synthesis as every protocol sees it, written once: the speech-session core.

:meth:`Utterance.begin` refuses everything that can be refused before a response starts:
an unusable voice, no capacity (with when to retry), and what only the worker can check
(language, text) by waiting for its Started or Failed. Then text may arrive in pieces (under a
per-utterance limit), the encoded audio goes out, the utterance ends once (done, failed or
cancelled) and its pool slot is released once.

Adapters (``app/protocols``) turn their protocol's messages into these calls, and an
:class:`Ending` or a :class:`~.errors.SpeechError` into their protocol's events; nothing here
knows a wire format or the web framework. The request's state on the pool is the utterance's
own: adapters read what they need through its properties.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

from common.log_setup import current_request_id
from common.protocol import Started, TextPiece, Timings
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary

from ..audio.encoding import output_rate
from ..audio.stream import encoded, encoder_for
from ..pool import PoolUnavailable, WorkerPool
from ..pool.streams import RequestStream, StreamFailed
from .errors import VOICE_CODES, SpeechError, worker_failure
from .requests import SpeechRequest


@dataclass(frozen=True)
class Ending:
    """How an utterance ended: what a protocol's done (or error) event reports."""

    request_id: str
    audio_seconds: float
    time_to_first_audio_ms: float | None  # from its first text to its first audio
    cancelled: bool = False
    failure: SpeechError | None = None


AudioSink = Callable[[bytes], Awaitable[None]]
EndSink = Callable[[Ending], Awaitable[None]]


class Utterance:
    """A synthesis a worker has accepted: its stream on the pool, its encoder, its text so far."""

    def __init__(
        self, stream: RequestStream, started: Started, request: SpeechRequest, pool: WorkerPool,
        speed: float, text_limit: int | None,
    ) -> None:  # fmt: skip
        self._stream = stream
        self._pool = pool
        self.format = request.format
        self.worker_id = started.worker_id
        self._source_rate = started.sample_rate
        self.sample_rate = output_rate(request.format, request.sample_rate, started.sample_rate)
        self._encoder = encoder_for(request.format, request.sample_rate, started.sample_rate, speed)
        self._text_limit = text_limit
        self._chars = 0
        self._first_text: float | None = None
        self._first_audio: float | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    async def begin(
        cls,
        request: SpeechRequest,
        pool: WorkerPool,
        library: VoiceLibrary,
        *,
        request_id: str | None = None,
        speed: float = 1.0,
        text_limit: int | None = None,
        timings: bool = False,
    ) -> Utterance:
        """Submit ``request`` and wait until a worker has accepted it (or raise SpeechError).

        Its id is ``request_id``, else the HTTP request's (see web/request_ids.py). A request
        without text takes it in pieces (:meth:`send_text`), at most ``text_limit`` characters.
        With ``timings``, each text chunk's :attr:`timings` come before the audio past its end.
        """
        request_id = request_id or current_request_id()
        stream = await _open_stream(request, library, request_id, timings)
        try:
            await pool.submit(stream)
        except PoolUnavailable as error:
            raise SpeechError(error.code, str(error), retry_after=error.retry_after) from None
        try:
            started = await stream.started()
            return cls(stream, started, request, pool, speed, text_limit)
        except StreamFailed as error:
            pool.release(stream)
            raise worker_failure(error.failed) from None
        except BaseException:  # cancelled while waiting, or no encoder: the slot is not kept
            pool.release(stream)
            raise

    @property
    def request_id(self) -> str:
        return self._stream.request_id

    @property
    def media_type(self) -> str:
        return self._encoder.media_type

    @property
    def running(self) -> bool:
        """Its audio is being forwarded (:meth:`forward`) and it has not ended."""
        return self._task is not None and not self._task.done()

    @property
    def timings(self) -> Sequence[Timings]:
        """Each text chunk's times so far, in order (begun with ``timings``)."""
        return self._stream.timings

    @property
    def audio_seconds(self) -> float:
        """The audio handed on so far, at the model's tempo (before any ``speed``)."""
        return self._stream.pcm_bytes / 2 / self._source_rate

    async def send_text(self, text: str) -> None:
        """Add ``text``; waits while this request's text not yet taken by its worker is at its
        bound (backpressure on this client alone). Over the utterance's limit: refused, and
        nothing of it is kept, so later flushes and the end still work."""
        if self._text_limit is not None and self._chars + len(text) > self._text_limit:
            raise SpeechError(
                "invalid_request",
                f"an utterance may hold at most {self._text_limit} characters "
                f"({self._chars} sent so far, this text has {len(text)})",
                "text",
            )
        self._chars += len(text)
        if text and self._first_text is None:
            self._first_text = time.perf_counter()
        await self._send(TextPiece(request_id=self.request_id, text=text))

    async def flush(self) -> None:
        """Speak everything sent so far, even an unfinished sentence."""
        await self._send(TextPiece(request_id=self.request_id, flush=True))

    async def end(self) -> None:
        """No more text: the audio ends after what was sent."""
        await self._send(TextPiece(request_id=self.request_id, end=True))

    async def _send(self, piece: TextPiece) -> None:
        await self._pool.send_text(self._stream, piece)

    async def audio(self) -> AsyncIterator[bytes]:
        """The encoded audio as it comes; raises SpeechError if the worker fails."""
        try:
            async for data in encoded(self._stream.audio(), self._encoder):
                if self._first_audio is None:
                    self._first_audio = time.perf_counter()
                yield data
        except StreamFailed as error:
            raise worker_failure(error.failed) from None

    def forward(
        self, send: AudioSink, ended: EndSink, client_gone: tuple[type[Exception], ...]
    ) -> None:
        """Send the audio in the background, then report the ending (not after a cancel).
        ``client_gone``: what ``send`` raises once the client has left (it ends quietly)."""
        self._task = asyncio.create_task(self._forward(send, ended, client_gone))

    async def _forward(
        self, send: AudioSink, ended: EndSink, client_gone: tuple[type[Exception], ...]
    ) -> None:
        try:
            async for data in self.audio():
                await send(data)
            await ended(self.ending())
        except SpeechError as error:
            with contextlib.suppress(Exception):
                await ended(self.ending(failure=error))
        except client_gone:
            pass  # its adapter sees it too
        finally:
            self.release()

    async def cancel(self) -> Ending:
        """Stop it now (the worker stops too) and free its slot; the ending to report."""
        await self.close()
        return self.ending(cancelled=True)

    async def close(self) -> None:
        """Stop forwarding and free the slot (the client is gone, or the utterance is over)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.release()

    def release(self) -> None:
        """Free its pool slot (cancelling it on the worker if it still runs); idempotent."""
        self._pool.release(self._stream)

    def ending(self, cancelled: bool = False, failure: SpeechError | None = None) -> Ending:
        first = None
        if self._first_audio is not None and self._first_text is not None:
            first = round((self._first_audio - self._first_text) * 1000, 1)
        return Ending(
            request_id=self.request_id,
            audio_seconds=round(self.audio_seconds, 3),
            time_to_first_audio_ms=first,
            cancelled=cancelled,
            failure=failure,
        )


async def _open_stream(
    request: SpeechRequest, library: VoiceLibrary, request_id: str, timings: bool
) -> RequestStream:
    """A stream for ``request`` with its voice resolved (SpeechError if it is unusable)."""
    clip, digest = None, None
    if request.voice_id is not None:
        try:
            voice = library.find(request.voice_id)
            path, digest = await asyncio.to_thread(library.prepared_clip, voice)
        except VoiceError as error:
            raise SpeechError(VOICE_CODES[error.kind], str(error), "voice_id") from None
        except FileNotFoundError:  # deleted (by this master or another) since it was found
            message = f"voice {request.voice_id!r} was deleted while this request was starting"
            raise SpeechError(VOICE_CODES["not_found"], message, "voice_id") from None
        clip = str(path)
    return RequestStream(
        text=request.text,
        params=request.params,
        voice_id=request.voice_id,
        voice_path=clip,
        voice_hash=digest,
        request_id=request_id,
        want_timings=timings,
        source=request.source,
    )
