"""One synthesis as every protocol sees it, written once: the speech-session core.

:meth:`Utterance.begin` refuses everything that can be refused before a response starts:
unknown voice (404/422), no capacity (503 with Retry-After), and what only the worker can check
(language, text) by waiting for its Started or Failed. Then text may arrive in pieces (under a
per-utterance limit), the encoded audio goes out, the utterance ends once (done, failed or
cancelled) and its pool slot is released once.

Adapters (``app/protocols``) turn their protocol's messages into these calls and an
:class:`Ending` into their protocol's events; nothing here knows a wire format.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from starlette.websockets import WebSocketDisconnect

from common.protocol import Failed, Started, TextPiece
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary

from ..audio.encoding import output_rate
from ..audio.stream import encoded, encoder_for
from ..pool import PoolUnavailable, WorkerPool
from ..streams import RequestStream, StreamFailed
from ..web.errors import SPEECH_VOICE_CODES, ApiError
from ..web.request_ids import current_request_id
from .requests import SpeechRequest


def failure_to_api_error(failed: Failed) -> ApiError:
    field = failed.field or ("voice_id" if failed.code.startswith("voice_") else None)
    error = ApiError(failed.code, failed.message, field)
    if error.status == 503:
        error.headers = {"Retry-After": "1"}
    return error


@dataclass(frozen=True)
class Ending:
    """How an utterance ended: what a protocol's done (or error) event reports."""

    request_id: str
    audio_seconds: float
    time_to_first_audio_ms: float | None  # from its first text to its first audio
    cancelled: bool = False
    failure: Failed | None = None


AudioSink = Callable[[bytes], Awaitable[None]]
EndSink = Callable[[Ending], Awaitable[None]]
# What a client's going away looks like while its audio is being sent to it.
DISCONNECTED = (WebSocketDisconnect, RuntimeError, OSError)


class Utterance:
    """A synthesis a worker has accepted: its stream on the pool, its encoder, its text so far."""

    def __init__(
        self, stream: RequestStream, started: Started, request: SpeechRequest, pool: WorkerPool,
        speed: float, text_limit: int | None,
    ) -> None:  # fmt: skip
        self.stream = stream
        self.pool = pool
        self.format = request.format
        self.worker_id = started.worker_id
        self.source_rate = started.sample_rate
        self.sample_rate = output_rate(request.format, request.sample_rate, started.sample_rate)
        self.encoder = encoder_for(request.format, request.sample_rate, started.sample_rate, speed)
        self.text_limit = text_limit
        self.chars = 0
        self.first_text: float | None = None
        self.first_audio: float | None = None
        self.task: asyncio.Task[None] | None = None

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
        """Submit ``request`` and wait until a worker has accepted it (or raise ApiError).

        Its id is ``request_id``, else the HTTP request's (see web/request_ids.py). A request
        without text takes it in pieces (:meth:`send_text`), at most ``text_limit`` characters.
        """
        stream = await _open_stream(request, library, request_id or current_request_id())
        stream.want_timings = timings  # its Timings collect on stream.timings, before later audio
        try:
            await pool.submit(stream)
        except PoolUnavailable as error:
            headers = {"Retry-After": str(error.retry_after)}
            raise ApiError(error.code, str(error), headers=headers) from None
        try:
            started = await stream.started()
            return cls(stream, started, request, pool, speed, text_limit)
        except StreamFailed as error:
            pool.release(stream)
            raise failure_to_api_error(error.failed) from None
        except BaseException:  # cancelled while waiting, or no encoder: the slot is not kept
            pool.release(stream)
            raise

    @property
    def request_id(self) -> str:
        return self.stream.request_id

    @property
    def media_type(self) -> str:
        return self.encoder.media_type

    @property
    def running(self) -> bool:
        """Its audio is being forwarded (:meth:`forward`) and it has not ended."""
        return self.task is not None and not self.task.done()

    async def send_text(self, text: str) -> None:
        """Add ``text``; waits while this request's text not yet taken by its worker is at its
        bound (backpressure on this client alone). Over the utterance's limit: refused, and
        nothing of it is kept, so later flushes and the end still work."""
        if self.text_limit is not None and self.chars + len(text) > self.text_limit:
            raise ApiError(
                "invalid_request",
                f"an utterance may hold at most {self.text_limit} characters "
                f"({self.chars} sent so far, this text has {len(text)})",
                "text",
            )
        self.chars += len(text)
        if text and self.first_text is None:
            self.first_text = time.perf_counter()
        await self._send(TextPiece(request_id=self.request_id, text=text))

    async def flush(self) -> None:
        """Speak everything sent so far, even an unfinished sentence."""
        await self._send(TextPiece(request_id=self.request_id, flush=True))

    async def end(self) -> None:
        """No more text: the audio ends after what was sent."""
        await self._send(TextPiece(request_id=self.request_id, end=True))

    async def _send(self, piece: TextPiece) -> None:
        await self.pool.send_text(self.stream, piece)

    async def audio(self) -> AsyncIterator[bytes]:
        """The encoded audio as it comes; raises StreamFailed if the worker fails."""
        async for data in encoded(self.stream, self.encoder):
            if self.first_audio is None:
                self.first_audio = time.perf_counter()
            yield data

    def forward(self, send: AudioSink, ended: EndSink) -> None:
        """Send the audio in the background, then report the ending (not after a cancel)."""
        self.task = asyncio.create_task(self._forward(send, ended))

    async def _forward(self, send: AudioSink, ended: EndSink) -> None:
        try:
            async for data in self.audio():
                await send(data)
            await ended(self.ending())
        except StreamFailed as error:
            with contextlib.suppress(Exception):
                await ended(self.ending(failure=error.failed))
        except DISCONNECTED:
            pass  # the client left; its adapter sees it too
        finally:
            self.release()

    async def cancel(self) -> Ending:
        """Stop it now (the worker stops too) and free its slot; the ending to report."""
        await self.close()
        return self.ending(cancelled=True)

    async def close(self) -> None:
        """Stop forwarding and free the slot (the client is gone, or the utterance is over)."""
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.release()

    def release(self) -> None:
        """Free its pool slot (cancelling it on the worker if it still runs); idempotent."""
        self.pool.release(self.stream)

    def ending(self, cancelled: bool = False, failure: Failed | None = None) -> Ending:
        first = None
        if self.first_audio is not None and self.first_text is not None:
            first = round((self.first_audio - self.first_text) * 1000, 1)
        return Ending(
            request_id=self.request_id,
            audio_seconds=round(self.stream.pcm_bytes / 2 / self.source_rate, 3),
            time_to_first_audio_ms=first,
            cancelled=cancelled,
            failure=failure,
        )


async def _open_stream(
    request: SpeechRequest, library: VoiceLibrary, request_id: str
) -> RequestStream:
    """A stream for ``request`` with its voice resolved (404/422 if the voice is unusable)."""
    clip, digest = None, None
    if request.voice_id is not None:
        try:
            voice = library.find(request.voice_id)
            path, digest = await asyncio.to_thread(library.prepared_clip, voice)
        except VoiceError as error:
            raise ApiError(SPEECH_VOICE_CODES[error.kind], str(error), "voice_id") from None
        except FileNotFoundError:  # deleted (by this master or another) since it was found
            message = f"voice {request.voice_id!r} was deleted while this request was starting"
            raise ApiError(SPEECH_VOICE_CODES["not_found"], message, "voice_id") from None
        clip = str(path)
    return RequestStream(
        text=request.text,
        params=request.params,
        voice_id=request.voice_id,
        voice_path=clip,
        voice_hash=digest,
        request_id=request_id,
    )
