"""ElevenLabs' HTTP text-to-speech: ``POST /v1/text-to-speech/{voice_id}/stream`` (the audio as
it is generated) and ``.../stream/with-timestamps`` (newline-delimited JSON, one object per
audio chunk: ``audio_base64``, ``alignment`` and ``normalized_alignment`` in seconds from the
first sample), as the ``elevenlabs`` SDKs' ``text_to_speech.stream`` and
``stream_with_timestamps`` call them.

The body's ``text``, ``voice_settings`` (app/protocols/elevenlabs_formats.py), ``seed`` and
``language_code`` are used; ElevenLabs' other fields (``model_id``, ``previous_text`` ...) are
accepted and ignored. Errors are ElevenLabs': ``{"detail": {"status", "message", "param"}}``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, ValidationError

from common.settings import Settings
from common.validation import first_problem

from ..speech.errors import SpeechError
from ..speech.requests import InvalidRequest, SpeakableText, SpeechRequest
from ..speech.utterance import Utterance
from ..web.audio_response import AudioStreamResponse, abort_on_failure
from ..web.dependencies import LibraryDep, PoolDep, SettingsDep
from ..web.errors import ApiError, speech_api_error
from ..web.json_body import read_json_object
from ..web.openapi import AUDIO_TYPES, Responses, binary, json_request
from .elevenlabs_alignment import Aligner
from .elevenlabs_formats import BadSetting, VoiceSettings, output_format
from .elevenlabs_ws import elevenlabs_key_problem

router = APIRouter()
NDJSON = "application/x-ndjson"
ROUTE = "/v1/text-to-speech/{voice_id}/stream"


class ElevenLabsErrorDetail(BaseModel):
    status: str
    message: str
    param: str | None = None


class ElevenLabsErrorBody(BaseModel):
    """Every error of the ElevenLabs-compatible HTTP API: ElevenLabs' shape."""

    detail: ElevenLabsErrorDetail


def _error(status: int, code: str, message: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    detail = {"status": code, "message": message, "param": param}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


_REFUSALS: Responses = {
    status: {"model": ElevenLabsErrorBody, "description": why}
    for status, why in {
        401: "No API key, or a wrong one (xi-api-key, X-API-Key or api_key)",
        404: "No such voice",
        413: "The body is over MAX_REQUEST_BYTES",
        422: "A field is missing, malformed or out of range (param names it)",
        503: "No worker ready or every slot busy: retry after Retry-After seconds",
    }.items()
}
_BODY = json_request(
    {
        "type": "object",
        "required": ["text"],
        "properties": {
            "text": {"type": "string"},
            "voice_settings": {"type": "object"},
            "seed": {"type": "integer"},
            "language_code": {"type": "string"},
            "model_id": {"type": "string"},
        },
    }
)


class SpeechBody(BaseModel):
    """The body's fields in use, strictly typed; ElevenLabs' others are ignored."""

    model_config = ConfigDict(strict=True, frozen=True)

    text: SpeakableText
    voice_settings: VoiceSettings | None = None
    seed: int | None = None
    language_code: str | None = None


# ElevenLabs' name for each synthesis parameter the body sets, which an error names.
THEIR_NAMES = {"seed": "seed", "language": "language_code", "exaggeration": "voice_settings"}


def _speech(voice_id: str, query: str | None, data: dict[str, Any], settings: Settings
            ) -> tuple[SpeechRequest, float]:  # fmt: skip
    """Our request and tempo for ElevenLabs' body and ``output_format`` (InvalidRequest)."""
    try:
        audio_format, rate = output_format(query)
    except BadSetting as error:
        raise InvalidRequest("output_format", str(error)) from None
    body = _body(data)
    if not any(ch.isalnum() for ch in body.text) or len(body.text) > settings.max_text_chars:
        raise InvalidRequest(
            "text", f"text must hold a letter or digit and at most {settings.max_text_chars} "
            "characters (MAX_TEXT_CHARS)",
        )  # fmt: skip
    voice = body.voice_settings or VoiceSettings()
    params = {**voice.params(), "seed": body.seed, "language": body.language_code}
    try:
        defaults = settings.synthesis_defaults(**params)
    except ValidationError as error:
        ours, message = first_problem(error.errors())
        theirs = THEIR_NAMES.get(ours or "", ours)
        raise InvalidRequest(theirs, message.replace(f"{ours}:", f"{theirs}:", 1)) from None
    return SpeechRequest(body.text, voice_id, audio_format, rate, defaults), voice.tempo


def _body(data: dict[str, Any]) -> SpeechBody:
    """``data`` as a SpeechBody; InvalidRequest naming the parameter (``voice_settings`` for any
    of its fields, whose message names the field)."""
    try:
        return SpeechBody.model_validate(data)
    except ValidationError as error:
        field, message = first_problem(error.errors())
        raise InvalidRequest(field and field.split(".")[0], message) from None


async def _begin(
    request: Request, voice_id: str, settings: Settings, pool: PoolDep, library: LibraryDep,
    timings: bool,
) -> tuple[Utterance, float] | JSONResponse:  # fmt: skip
    """The accepted utterance and its tempo, or the response that refuses it before any audio."""
    refusal = elevenlabs_key_problem(request, settings)
    if refusal is not None:
        return _error(401, "invalid_api_key", refusal)
    try:
        body = await read_json_object(request)
        speech, speed = _speech(voice_id, request.query_params.get("output_format"), body,
                                settings)  # fmt: skip
        utterance = await Utterance.begin(speech, pool, library, speed=speed, timings=timings)
        return utterance, speed
    except InvalidRequest as error:
        return _error(422, "invalid_request", str(error), error.field)
    except SpeechError as error:
        return _refusal(speech_api_error(error))
    except ApiError as error:  # the body: too large, or not a JSON object
        return _refusal(error)


def _refusal(error: ApiError) -> JSONResponse:
    """Ours in ElevenLabs' shape: a refusal by the worker names our parameter."""
    param = THEIR_NAMES.get(error.field or "", error.field)
    return _error(error.status, error.code, error.message, param, error.headers)


@router.post(
    ROUTE, response_class=StreamingResponse, openapi_extra=_BODY,
    responses={**binary("The audio, streamed as it is generated", *AUDIO_TYPES), **_REFUSALS},
)  # fmt: skip
async def stream(
    request: Request, voice_id: str, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> Response:
    """ElevenLabs' streaming text-to-speech: the audio in ``output_format`` as it comes."""
    return await _respond(request, voice_id, settings, pool, library, timestamps=False)


@router.post(
    ROUTE + "/with-timestamps", response_class=StreamingResponse, openapi_extra=_BODY,
    responses={**binary("One JSON object per audio chunk, a line each", NDJSON), **_REFUSALS},
)  # fmt: skip
async def stream_with_timestamps(
    request: Request, voice_id: str, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> Response:
    """The audio as base64 in JSON lines, each with the characters that start in it."""
    return await _respond(request, voice_id, settings, pool, library, timestamps=True)


async def _respond(
    request: Request, voice_id: str, settings: Settings, pool: PoolDep, library: LibraryDep,
    timestamps: bool,
) -> Response:  # fmt: skip
    """The refusal, or the audio (as JSON lines with its alignment, with ``timestamps``)."""
    begun = await _begin(request, voice_id, settings, pool, library, timings=timestamps)
    if isinstance(begun, JSONResponse):
        return begun
    utterance, speed = begun
    body = _lines(utterance, speed) if timestamps else utterance.audio()
    return AudioStreamResponse(
        abort_on_failure(utterance.request_id, body),
        on_close=utterance.release,
        media_type=NDJSON if timestamps else utterance.media_type,
        headers={"X-Request-Id": utterance.request_id},
    )


async def _lines(utterance: Utterance, speed: float) -> AsyncIterator[bytes]:
    aligner = Aligner(speed, relative=False)
    async for audio in utterance.audio():
        aligner.feed(utterance.timings)
        yield _line(audio, aligner.message(utterance.audio_seconds * 1000 / aligner.speed))
    aligner.feed(utterance.timings)
    rest = aligner.message(None)
    if rest["alignment"] or rest["normalizedAlignment"]:
        yield _line(b"", rest)


def _line(audio: bytes, alignment: dict[str, Any]) -> bytes:
    line = {
        "audio_base64": base64.b64encode(audio).decode(),
        "alignment": _seconds(alignment["alignment"]),
        "normalized_alignment": _seconds(alignment["normalizedAlignment"]),
    }
    return json.dumps(line).encode() + b"\n"


def _seconds(alignment: dict[str, Any] | None) -> dict[str, Any] | None:
    """The WebSocket's millisecond alignment as the HTTP API's seconds."""
    if alignment is None:
        return None
    starts = alignment["charStartTimesMs"]
    ends = [s + d for s, d in zip(starts, alignment["charDurationsMs"], strict=True)]
    return {
        "characters": alignment["chars"],
        "character_start_times_seconds": [s / 1000 for s in starts],
        "character_end_times_seconds": [e / 1000 for e in ends],
    }
