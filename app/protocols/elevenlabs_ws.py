"""ElevenLabs' text-to-speech WebSockets: ``/v1/text-to-speech/{voice_id}/multi-stream-input``
(several contexts per socket) and ``.../stream-input`` (one), as Pipecat, LiveKit and the
ElevenLabs SDK speak them. Each context is one :class:`Utterance` (its own synthesis in the
worker's batch), sent with ``Job.timings`` so its audio messages carry ``alignment``.

Client messages: ``{"text": " ", "context_id", "voice_settings"?}`` opens a context (any text
for an unknown context opens it too); ``{"text", "context_id", "flush"?}`` adds text;
``{"context_id", "flush": true}`` speaks what is buffered; ``{"text": ""}`` is a keep-alive on
multi-stream-input (it never ends anything) and the end of the text on stream-input (as the SDK
sends it); ``{"context_id", "close_context": true}`` finishes a context whose last message was a
flush without text (the end of a turn: Pipecat and LiveKit send that flush, then the close) and
otherwise stops it at once (a barge-in: text was sent since, or the context was closed before;
Pipecat closes a finished turn again when the user interrupts its audio);
``{"close_socket": true}`` does that for every context, then closes. With ``?auto_mode=true``
(both frameworks' default) each text message ends a word, so a message ending a sentence is
spoken at once rather than when the next text shows that the sentence is over.
Server: ``{"audio", "alignment", "normalizedAlignment", "contextId"}``,
``{"isFinal": true, "contextId"}``, errors as ``{"error", "message"}``.

An error a context causes ends that context, whatever it was (refused at its opening for
capacity, readiness, its voice or its settings, text over the limit, a malformed message naming
it, its worker's failure): on multi-stream-input the error names it as both clients read it
(``contextId`` and ``context_id``) and carries ``isFinal``, and a context still open is stopped
(its slot freed); LiveKit fails that stream and forgets the context without closing it, and
Pipecat reads only ``isFinal``. On stream-input the context is the socket: a refusal or failure of
its synthesis is the socket's last message, then it closes (the ElevenLabs SDK raises an error
when the socket closes after a message with a ``message``); a malformed message is refused
without ending anything there, as on every socket.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, WebSocket
from starlette.requests import HTTPConnection

from common.log_setup import current_request_id
from common.settings import Settings
from common.validation import printable
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary

from ..pool import WorkerPool
from ..speech.requests import SpeakableText, SpeechRequest
from ..speech.utterance import Ending, Utterance
from ..web.auth import key_matches
from ..web.dependencies import LibraryDep, PoolDep, SettingsDep
from .elevenlabs_alignment import Aligner
from .elevenlabs_formats import BadSetting, VoiceSettings, output_format
from .ws_messages import DISCONNECTED, BadMessage, ClientMessage, serve, validate

router = APIRouter()
DEFAULT_CONTEXT = "default"


def elevenlabs_key_problem(websocket: HTTPConnection, settings: Settings) -> str | None:
    """Why the key (``xi-api-key`` header or query, or ours) is refused, or None."""
    if not settings.api_keys:
        return None
    headers, query = websocket.headers, websocket.query_params
    candidate = (
        headers.get("xi-api-key") or query.get("xi-api-key")
        or headers.get("x-api-key") or query.get("api_key")
    )  # fmt: skip
    if not candidate:
        return "missing API key: send it in the xi-api-key header or query parameter"
    return None if key_matches(candidate, settings.api_keys) else "the API key is not valid"


class Message(ClientMessage):
    """Every client message of both sockets: which fields it carries says what it asks."""

    text: SpeakableText | None = None
    context_id: str | None = None
    flush: bool | None = None
    close_context: bool | None = None
    close_socket: bool | None = None
    voice_settings: VoiceSettings | None = None


@dataclass
class Context:
    utterance: Utterance
    aligner: Aligner
    ending: bool = False  # its last message was a flush without text: a (first) close finishes it


class ElevenLabsSession:
    def __init__(
        self, ws: WebSocket, voice_id: str, multi: bool, settings: Settings,
        pool: WorkerPool, library: VoiceLibrary,
    ) -> None:  # fmt: skip
        self.ws, self.voice_id, self.multi = ws, voice_id, multi
        self.settings, self.pool, self.library = settings, pool, library
        self.format, self.rate = output_format(ws.query_params.get("output_format"))
        self.relative = not _flag(ws, "sync_alignment")
        self.auto_mode = _flag(ws, "auto_mode")
        self.contexts: dict[str, Context] = {}
        self.sending = asyncio.Lock()
        self.closing = False
        self.opened = 0
        self.connection_id = current_request_id()

    async def run(self) -> None:
        await serve(self.ws, self._handle, self._refuse, lambda: self.closing and not self.contexts)

    async def _refuse(self, error: BadMessage, data: dict[str, Any] | None) -> None:
        """The error; it ends the context the message named (see the module's docstring)."""
        reply = {"error": error.code, "message": printable(str(error))}
        named = data.get("context_id") if data is not None else None
        if self.multi and isinstance(named, str):
            await self._fail(named or DEFAULT_CONTEXT, reply)
        elif not self.multi and error.speech:
            await self._fail("", reply, _close_code(error.code))
        else:
            await self._send(reply)

    async def _fail(self, context_id: str, reply: dict[str, Any], close_code: int = 0) -> None:
        """End ``context_id`` (stopped if open) with the error ``reply``; on stream-input, close
        the socket with ``close_code`` after it."""
        context = self.contexts.pop(context_id, None)
        if context is not None:
            await context.utterance.cancel()
        await self._send({**reply, "isFinal": True}, context_id, both=True)
        if not self.multi:
            self.closing = True
            await self._close_socket(close_code, reply["message"])
        elif self.closing and not self.contexts:
            await self._close_socket()

    async def _handle(self, data: dict[str, Any]) -> None:
        message = validate(Message, data)
        if message.close_socket:
            self.closing = True
            for context_id in list(self.contexts):
                await self._close(context_id)
            if not self.contexts:  # none left to finish (the last one's isFinal closed it)
                await self._close_socket()
            return
        context_id = (message.context_id or DEFAULT_CONTEXT) if self.multi else ""
        if message.close_context:
            await self._close(context_id)
            return
        text, context = message.text, self.contexts.get(context_id)
        if text == "" and not message.flush:
            if not self.multi:  # the end of the text on stream-input, a keep-alive otherwise
                await self._end_input(context)
            return
        if context is None:
            if text is None:
                what = f"context {context_id!r} is not" if self.multi else "nothing is"
                raise BadMessage(f"{what} open: send text first")
            context = await self._open(context_id, message.voice_settings)
        if text:
            if self.auto_mode and not text[-1].isspace():
                text += " "  # the message is a whole phrase: its last word is complete
            await context.utterance.send_text(text)
        context.ending = bool(message.flush) and not text
        if message.flush:
            await context.utterance.flush()

    async def _end_input(self, context: Context | None) -> None:
        """stream-input's end: its context finishes, then the socket closes (at once if no text
        ever came: a client waiting for the end of nothing is answered)."""
        self.closing = True
        if context is None:
            await self._final("", None)
        else:
            await context.utterance.end()

    async def _open(self, context_id: str, settings: VoiceSettings | None) -> Context:
        limit = self.settings.elevenlabs_max_contexts if self.multi else 1
        if len(self.contexts) >= limit:
            raise BadMessage(
                f"at most {limit} contexts may be open on one socket (ELEVENLABS_MAX_CONTEXTS): "
                "close one first"
            )
        settings = settings or VoiceSettings()
        defaults = self.settings.synthesis_defaults(**settings.params())
        speed = settings.tempo
        self.opened += 1
        request = SpeechRequest(None, self.voice_id, self.format, self.rate, defaults)
        utterance = await Utterance.begin(
            request, self.pool, self.library, request_id=f"{self.connection_id}-{self.opened}",
            speed=speed, text_limit=self.settings.ws_max_text_chars, timings=True,
        )  # fmt: skip
        context = Context(utterance, Aligner(speed, self.relative))
        self.contexts[context_id] = context
        utterance.forward(
            lambda audio: self._audio(context_id, context, audio),
            lambda ending: self._ended(context_id, context, ending),
            DISCONNECTED,
        )
        return context

    async def _audio(self, context_id: str, context: Context, audio: bytes) -> None:
        utterance = context.utterance
        context.aligner.feed(utterance.timings)
        sent_ms = utterance.audio_seconds * 1000
        message = {"audio": base64.b64encode(audio).decode()}
        message.update(context.aligner.message(sent_ms / context.aligner.speed))
        await self._send(message, context_id)

    async def _ended(self, context_id: str, context: Context, ending: Ending) -> None:
        context.aligner.feed(context.utterance.timings)
        rest = context.aligner.message(None)
        if rest["alignment"] or rest["normalizedAlignment"]:
            await self._send({"audio": "", **rest}, context_id)
        failure = ending.failure
        if failure is None:
            await self._final(context_id, context)
        elif self.contexts.get(context_id) is context:  # its forwarding ends here, on its own
            del self.contexts[context_id]
            reply = {"error": failure.code, "message": failure.message}
            await self._fail(context_id, reply, _close_code(failure.code))

    async def _close(self, context_id: str) -> None:
        context = self.contexts.get(context_id)
        if context is None:
            return
        if context.ending:
            context.ending = False  # closed again, it stops
            await context.utterance.end()  # finish what was flushed, then isFinal
            return
        await context.utterance.cancel()  # a barge-in: stop now
        await self._final(context_id, context)

    async def _final(self, context_id: str, context: Context | None) -> None:
        if context is not None and self.contexts.get(context_id) is context:
            del self.contexts[context_id]
        await self._send({"isFinal": True}, context_id)
        if self.closing and not self.contexts:
            await self._close_socket()

    async def _close_socket(self, code: int = 0, reason: str = "") -> None:
        with contextlib.suppress(RuntimeError):  # closed already
            await self.ws.close(code or 1000, reason[:120])

    async def _send(
        self, message: dict[str, Any], context_id: str | None = None, both: bool = False
    ) -> None:
        """Send ``message`` naming ``context_id`` on multi-stream-input: as ``contextId``, as
        Pipecat and LiveKit read it, and (``both``) also as ``context_id``, as LiveKit does."""
        if self.multi and context_id is not None:
            message["contextId"] = context_id
            if both:
                message["context_id"] = context_id
        async with self.sending:
            await self.ws.send_text(json.dumps(message))

    async def stop(self) -> None:
        for context in list(self.contexts.values()):
            await context.utterance.close()
        self.contexts.clear()


def _close_code(error_code: str) -> int:
    """The close code that ends stream-input after an error: try again later, a failure on our
    side, or a refusal of what was asked."""
    if error_code in ("overloaded", "not_ready", "worker_draining"):
        return 1013
    return 1011 if error_code in ("worker_crashed", "internal_error") else 1008


def _flag(ws: WebSocket, name: str) -> bool:
    return ws.query_params.get(name, "false").lower() == "true"


def _endpoint(multi: bool) -> Callable[..., Awaitable[None]]:
    """The route of one of the two sockets: they differ only in ``multi``."""

    async def endpoint(
        websocket: WebSocket, voice_id: str, settings: SettingsDep, pool: PoolDep,
        library: LibraryDep,
    ) -> None:  # fmt: skip
        try:
            session = _session(websocket, voice_id, multi, settings, pool, library)
        except BadSetting as refusal:
            await websocket.accept()
            message = str(refusal)
            await websocket.send_text(json.dumps({"error": "invalid_request", "message": message}))
            await websocket.close(1008, message[:120])
            return
        await websocket.accept()
        try:
            await session.run()
        finally:
            await session.stop()

    return endpoint


def _session(
    ws: WebSocket, voice_id: str, multi: bool, settings: Settings, pool: WorkerPool,
    library: VoiceLibrary,
) -> ElevenLabsSession:  # fmt: skip
    """The session the handshake asks for; BadSetting (the key, the voice, ``output_format``)."""
    refusal = elevenlabs_key_problem(ws, settings)
    if refusal is not None:
        raise BadSetting(refusal)
    try:
        library.find(voice_id)
    except VoiceError as error:
        raise BadSetting(str(error)) from None
    return ElevenLabsSession(ws, voice_id, multi, settings, pool, library)


router.add_api_websocket_route("/v1/text-to-speech/{voice_id}/multi-stream-input", _endpoint(True))
router.add_api_websocket_route("/v1/text-to-speech/{voice_id}/stream-input", _endpoint(False))
