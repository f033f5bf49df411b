"""``WS /tts/stream``: text in as it is written (an LLM's output), audio out as it is spoken.

Protocol (docs/API.md has examples). Client JSON messages: ``start`` (voice_id, format and any
synthesis parameter; optional first text), ``text``, ``flush``, ``end``, ``cancel``; a message
with ``text`` and no ``type`` is start + text + end. Server: ``started``, binary audio frames,
``done``, ``error``. One utterance at a time per connection; after ``done`` another may start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from common.log_setup import request_id_var
from common.protocol import TextPiece
from common.settings import Settings
from common.validation import printable
from common.voices.library import VoiceLibrary

from ..audio_stream import encoded, encoder_for
from ..auth import check_api_key
from ..dependencies import LibraryDep, PoolDep, SettingsDep
from ..encoding import Encoder, output_rate
from ..errors import ApiError, error_response
from ..json_body import InvalidJson, parse_json_object
from ..pool import WorkerPool
from ..request_ids import current_request_id
from ..schemas import InvalidRequest, parse_speech_request, text_piece
from ..speech import start_speech
from ..streams import RequestStream, StreamFailed

log = logging.getLogger(__name__)
router = APIRouter()
POLICY_VIOLATION = 1008


@router.websocket("/tts/stream")
async def tts_stream(
    websocket: WebSocket, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> None:
    try:
        check_api_key(websocket, settings)
    except ApiError as error:
        await _deny(websocket, error)
        return
    await websocket.accept()
    session = StreamSession(websocket, pool, settings, library)
    try:
        await session.run()
    finally:
        await session.stop_utterance()


async def _deny(websocket: WebSocket, error: ApiError) -> None:
    """Refuse the handshake with the HTTP status and JSON body, where the server allows it."""
    try:
        await websocket.send_denial_response(error_response(error))
    except RuntimeError:  # the server lacks the denial-response extension
        await websocket.close(code=POLICY_VIOLATION, reason=error.message[:120])


def _text_piece(text: object) -> str:
    try:
        return text_piece(text)
    except InvalidRequest as error:
        raise ClientError("invalid_request", str(error), error.field) from None


class ClientError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


class Utterance:
    """One start ... end: its stream on the pool and the task forwarding its audio."""

    def __init__(self, stream: RequestStream, encoder: Encoder, source_rate: int) -> None:
        self.stream = stream
        self.encoder = encoder
        self.source_rate = source_rate
        self.chars = 0
        self.first_text: float | None = None
        self.first_audio: float | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


class StreamSession:
    def __init__(
        self, websocket: WebSocket, pool: WorkerPool, settings: Settings, library: VoiceLibrary
    ) -> None:
        self.library = library
        self.ws = websocket
        self.pool = pool
        self.settings = settings
        self.utterance: Utterance | None = None
        self.connection_id = current_request_id()
        self.utterances = 0

    async def run(self) -> None:
        while True:
            try:
                message = await self.ws.receive_text()
            except (WebSocketDisconnect, RuntimeError):
                return
            except KeyError:  # a binary frame
                await self._error("invalid_message", "send JSON text messages, not binary frames")
                continue
            try:
                await self._handle(self._parse(message))
            except ClientError as error:
                await self._error(error.code, str(error), error.field)
            except ApiError as error:
                await self._error(error.code, error.message, error.field)

    @staticmethod
    def _parse(message: str) -> dict[str, Any]:
        try:
            return parse_json_object(message, "a message")
        except InvalidJson as error:
            raise ClientError("invalid_message", str(error)) from None

    async def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind is None and "text" in data:
            await self._start(data)
            self._send_text(TextPiece(request_id="", end=True))
        elif kind == "start":
            await self._start(data)
        elif kind == "text":
            self._send_text(TextPiece(request_id="", text=_text_piece(data.get("text"))))
        elif kind == "flush":
            self._send_text(TextPiece(request_id="", flush=True))
        elif kind == "end":
            self._send_text(TextPiece(request_id="", end=True))
        elif kind == "cancel":
            await self._cancel()
        else:
            raise ClientError(
                "invalid_message",
                f"unknown message type {kind!r}: use start, text, flush, end or cancel",
                "type",
            )

    async def _start(self, data: dict[str, Any]) -> None:
        if self.utterance is not None and self.utterance.running:
            raise ClientError(
                "invalid_message", "an utterance is in progress: send end or cancel first"
            )
        fields = {k: v for k, v in data.items() if k != "type"}
        text = fields.pop("text", None)
        text = None if text is None else _text_piece(text)  # refused before a worker is taken
        try:
            speech = parse_speech_request(fields, self.settings, text_required=False)
        except InvalidRequest as error:
            raise ClientError("invalid_request", str(error), error.field) from None
        self.utterances += 1
        request_id = f"{self.connection_id}-{self.utterances}"
        request_id_var.set(request_id)  # this session's lines from here on name the utterance
        stream, started = await start_speech(speech, self.pool, self.library, request_id)
        rate = output_rate(speech.format, speech.sample_rate, started.sample_rate)
        encoder = encoder_for(speech.format, speech.sample_rate, started.sample_rate)
        utterance = Utterance(stream, encoder, started.sample_rate)
        self.utterance = utterance
        await self.ws.send_json(
            {
                "type": "started",
                "request_id": stream.request_id,
                "sample_rate": rate,
                "channels": 1,
                "format": speech.format,
                "content_type": encoder.media_type,
            }
        )
        utterance.task = asyncio.create_task(self._forward(utterance))
        if text is not None:
            self._send_text(TextPiece(request_id="", text=text))

    def _send_text(self, piece: TextPiece) -> None:
        utterance = self.utterance
        if utterance is None or not utterance.running:
            raise ClientError("invalid_message", "no utterance in progress: send start first")
        utterance.chars += len(piece.text)
        if utterance.chars > self.settings.ws_max_text_chars:
            raise ClientError(
                "invalid_request",
                f"an utterance may hold at most {self.settings.ws_max_text_chars} characters",
                "text",
            )
        if piece.text and utterance.first_text is None:
            utterance.first_text = time.perf_counter()
        stream = utterance.stream
        self.pool.send_text(stream, piece.model_copy(update={"request_id": stream.request_id}))

    async def _forward(self, utterance: Utterance) -> None:
        stream = utterance.stream
        try:
            async for data in encoded(stream, utterance.encoder):
                if utterance.first_audio is None:
                    utterance.first_audio = time.perf_counter()
                await self.ws.send_bytes(data)
            await self.ws.send_json(self._done_event(utterance))
        except StreamFailed as error:
            failed = error.failed
            with contextlib.suppress(Exception):
                await self._error(failed.code, failed.message, failed.field, stream.request_id)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client left; run() sees it too
        finally:
            self.pool.release(stream)

    @staticmethod
    def _done_event(utterance: Utterance, cancelled: bool = False) -> dict[str, Any]:
        first = None
        if utterance.first_audio is not None and utterance.first_text is not None:
            first = round((utterance.first_audio - utterance.first_text) * 1000, 1)
        return {
            "type": "done",
            "request_id": utterance.stream.request_id,
            "audio_seconds": round(utterance.stream.pcm_bytes / 2 / utterance.source_rate, 3),
            "time_to_first_audio_ms": first,
            "cancelled": cancelled,
        }

    async def _cancel(self) -> None:
        utterance = self.utterance
        if utterance is None or not utterance.running:
            raise ClientError("invalid_message", "no utterance in progress to cancel")
        await self.stop_utterance()
        await self.ws.send_json(self._done_event(utterance, cancelled=True))

    async def stop_utterance(self) -> None:
        utterance = self.utterance
        if utterance is None or utterance.task is None:
            return
        utterance.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await utterance.task
        self.pool.release(utterance.stream)

    async def _error(
        self, code: str, message: str, field: str | None = None, request_id: str | None = None
    ) -> None:
        event: dict[str, Any] = {"type": "error", "code": code, "message": printable(message)}
        if field:
            event["field"] = printable(field)
        if request_id:
            event["request_id"] = request_id
        await self.ws.send_json(event)
