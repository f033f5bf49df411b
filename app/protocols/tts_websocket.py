"""``WS /tts/stream``: text in as it is written (an LLM's output), audio out as it is spoken.

Protocol (docs/API.md has examples). Client JSON messages: ``start`` (voice_id, format and any
synthesis parameter; optional first text; ``timings: true`` for timings events), ``text``,
``flush``, ``end``, ``cancel``; a message with ``text`` and no ``type`` is start + text + end.
Server: ``started``, binary audio frames, ``timings`` (asked for: one per text chunk, before the
audio that goes past its end), ``done``, ``error``. One utterance at a time per connection; after
``done`` another may start.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import ConfigDict

from common.log_setup import current_request_id, request_id_var
from common.settings import Settings
from common.validation import printable
from common.voices.library import VoiceLibrary

from ..pool import WorkerPool
from ..speech.requests import InvalidRequest, SpeakableText, parse_speech_request
from ..speech.utterance import Ending, Utterance
from ..web.auth import check_api_key
from ..web.dependencies import LibraryDep, PoolDep, SettingsDep
from ..web.errors import ApiError, error_response
from .ws_messages import DISCONNECTED, BadMessage, ClientMessage, serve, validate

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


class Start(ClientMessage):
    """``start``, or with no ``type`` the one-message utterance (:class:`Say`); its other fields
    are the request's parameters (``parse_speech_request``)."""

    model_config = ConfigDict(extra="allow")

    text: SpeakableText | None = None
    timings: bool = False

    def parameters(self) -> dict[str, Any]:
        return {k: v for k, v in (self.model_extra or {}).items() if k != "type"}


class Say(Start):
    text: SpeakableText


class Text(ClientMessage):
    text: SpeakableText


KINDS = ("start", "text", "flush", "end", "cancel")


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
        self.timings_sent = 0  # of the current utterance's Timings

    async def run(self) -> None:
        await serve(self.ws, self._handle, self._refuse)

    async def _refuse(self, error: BadMessage, _: dict[str, Any] | None) -> None:
        await self._error(error.code, str(error), error.field)

    async def _handle(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind is None and "text" in data:
            await self._start(validate(Say, data))
            await self._current().end()
        elif kind == "start":
            await self._start(validate(Start, data))
        elif kind == "text":
            text = validate(Text, data).text  # a malformed message is refused as such first
            await self._current().send_text(text)
        elif kind == "flush":
            await self._current().flush()
        elif kind == "end":
            await self._current().end()
        elif kind == "cancel":
            await self._cancel()
        else:
            raise BadMessage(f"unknown message type {kind!r:.40}: use {', '.join(KINDS)}", "type")

    async def _start(self, start: Start) -> None:
        if self.utterance is not None and self.utterance.running:
            raise BadMessage("an utterance is in progress: send end or cancel first")
        try:
            speech = parse_speech_request(start.parameters(), self.settings, text_required=False)
        except InvalidRequest as error:
            raise BadMessage(str(error), error.field, "invalid_request") from None
        self.utterances += 1
        request_id = f"{self.connection_id}-{self.utterances}"
        request_id_var.set(request_id)  # this session's lines from here on name the utterance
        utterance = await Utterance.begin(
            speech, self.pool, self.library, request_id=request_id,
            text_limit=self.settings.ws_max_text_chars, timings=start.timings,
        )  # fmt: skip
        self.utterance = utterance
        self.timings_sent = 0
        await self.ws.send_json(
            {
                "type": "started",
                "request_id": utterance.request_id,
                "sample_rate": utterance.sample_rate,
                "channels": 1,
                "format": utterance.format,
                "content_type": utterance.media_type,
            }
        )
        utterance.forward(
            lambda audio: self._audio(utterance, audio),
            lambda ending: self._ended(utterance, ending),
            DISCONNECTED,
        )
        if start.text is not None:
            await utterance.send_text(start.text)

    def _current(self) -> Utterance:
        utterance = self.utterance
        if utterance is None or not utterance.running:
            raise BadMessage("no utterance in progress: send start first")
        return utterance

    async def _audio(self, utterance: Utterance, audio: bytes) -> None:
        await self._send_timings(utterance)
        await self.ws.send_bytes(audio)

    async def _send_timings(self, utterance: Utterance) -> None:
        """Its Timings not sent yet (it has them before the audio past their end)."""
        timings = utterance.timings
        for chunk in timings[self.timings_sent :]:
            await self.ws.send_json(chunk.model_dump())
        self.timings_sent = len(timings)

    async def _ended(self, utterance: Utterance, ending: Ending) -> None:
        await self._send_timings(utterance)
        failed = ending.failure
        if failed is None:
            await self.ws.send_json(_done_event(ending))
        else:
            await self._error(failed.code, failed.message, failed.field, ending.request_id)

    async def _cancel(self) -> None:
        utterance = self.utterance
        if utterance is None or not utterance.running:
            raise BadMessage("no utterance in progress to cancel")
        await self.ws.send_json(_done_event(await utterance.cancel()))

    async def stop_utterance(self) -> None:
        if self.utterance is not None:
            await self.utterance.close()

    async def _error(
        self, code: str, message: str, field: str | None = None, request_id: str | None = None
    ) -> None:
        event: dict[str, Any] = {"type": "error", "code": code, "message": printable(message)}
        if field:
            event["field"] = printable(field)
        if request_id:
            event["request_id"] = request_id
        await self.ws.send_json(event)


def _done_event(ending: Ending) -> dict[str, Any]:
    return {
        "type": "done",
        "request_id": ending.request_id,
        "audio_seconds": ending.audio_seconds,
        "time_to_first_audio_ms": ending.time_to_first_audio_ms,
        "cancelled": ending.cancelled,
    }
