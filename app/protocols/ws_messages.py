"""Client messages on every WebSocket protocol (``/tts/stream``, ElevenLabs' two sockets), read
and validated one way, within the same bounds.

A message is one text frame holding one JSON object:

- at most ``MAX_REQUEST_BYTES``: uvicorn's ``ws_max_size`` (app/__main__.py) closes the socket
  with 1009 and a reason naming the limit as soon as a larger frame's header arrives, before
  anything is buffered or reaches an adapter;
- nested at most ``MAX_JSON_DEPTH`` levels, parsed by app/web/json_body.py (no RecursionError);
- then validated by the adapter's pydantic model for that kind of message, its fields strictly
  typed (a number is not text, ``"yes"`` is not true); fields a model does not name are
  ignored, as clients send extras (ElevenLabs' ``generation_config``, ``xi_api_key`` ...).

Whatever fails is a :class:`BadMessage` naming the field at fault, which :func:`serve` hands to
the adapter to word in its protocol's error shape; the socket stays open. A client that leaves
ends :func:`serve` quietly, whatever the session was doing, so the adapter's cleanup runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import WebSocket
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.websockets import WebSocketDisconnect

from common.validation import first_problem

from ..speech.errors import SpeechError
from ..web.json_body import InvalidJson, parse_json_object

# What a client's going away looks like while something is being sent to it.
DISCONNECTED = (WebSocketDisconnect, RuntimeError, OSError)


class BadMessage(Exception):
    """A message refused: ``str()`` says why, ``field`` names the field at fault (None: the whole
    message), ``code`` is the protocol's error code. ``speech``: the speech core refused what the
    message asked (no capacity, an unusable voice, text over the limit ...), as opposed to the
    message's form: an adapter may end the synthesis it was for."""

    def __init__(
        self, message: str, field: str | None = None, code: str = "invalid_message",
        speech: bool = False,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.field = field
        self.code = code
        self.speech = speech

    @classmethod
    def from_speech_error(cls, error: SpeechError) -> BadMessage:
        return cls(error.message, error.field, error.code, speech=True)


class ClientMessage(BaseModel):
    """The base of every client message's model: strict types, other fields ignored."""

    model_config = ConfigDict(strict=True, frozen=True)


M = TypeVar("M", bound=BaseModel)
Handler = Callable[[dict[str, Any]], Awaitable[None]]
Refuser = Callable[[BadMessage, dict[str, Any] | None], Awaitable[None]]


def validate(model: type[M], data: dict[str, Any]) -> M:
    """``data`` as ``model``; BadMessage (``invalid_request``) naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        field, message = first_problem(error.errors())
        raise BadMessage(message, field, "invalid_request") from None


async def receive_object(ws: WebSocket) -> dict[str, Any] | None:
    """The next message's JSON object, or None once the client has gone; BadMessage for a binary
    frame or anything but a JSON object within bounds."""
    try:
        message = await ws.receive()
    except RuntimeError:  # the socket was closed already
        return None
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        raise BadMessage("send JSON text messages, not binary frames")
    try:
        return parse_json_object(text, "a message")
    except InvalidJson as error:
        raise BadMessage(str(error)) from None


async def serve(
    ws: WebSocket, handle: Handler, refuse: Refuser, done: Callable[[], bool] = lambda: False
) -> None:
    """Hand each message to ``handle`` until the client leaves or ``done()``; each BadMessage or
    SpeechError goes to ``refuse`` with the message's object (None if it had none)."""
    with contextlib.suppress(*DISCONNECTED):
        while not done():
            data = None
            try:
                data = await receive_object(ws)
                if data is None:
                    return
                await handle(data)
            except BadMessage as error:
                await refuse(error, data)
            except SpeechError as error:
                await refuse(BadMessage.from_speech_error(error), data)
