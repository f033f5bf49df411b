"""ElevenLabs' HTTP text-to-speech, as the ``elevenlabs`` SDKs call it:

- ``POST /v1/text-to-speech/{voice_id}/stream`` (``stream``): the audio as it is generated;
- ``.../stream/with-timestamps`` (``stream_with_timestamps``): newline-delimited JSON, one object
  per audio chunk: ``audio_base64``, ``alignment`` and ``normalized_alignment`` in seconds from
  the first sample;
- ``POST /v1/text-to-speech/{voice_id}`` (``convert``): the whole audio (sent as it comes too);
- ``.../with-timestamps`` (``convert_with_timestamps``): one JSON object with the whole audio
  and its alignment, sent once generation has ended (so a late failure is still an error status).

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
BASE = "/v1/text-to-speech/{voice_id}"
ROUTE = BASE + "/stream"


class ElevenLabsErrorDetail(BaseModel):
    status: str
    message: str
    param: str | None = None


class ElevenLabsErrorBody(BaseModel):
    """Every error of the ElevenLabs-compatible HTTP API: ElevenLabs' shape."""

    detail: ElevenLabsErrorDetail


def elevenlabs_error(status: int, code: str, message: str, param: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:  # fmt: skip
    detail = {"status": code, "message": message, "param": param}
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def elevenlabs_refusals(whys: dict[int, str]) -> Responses:
    """The OpenAPI ``responses`` of refusals in ElevenLabs' shape, each with why it happens."""
    return {
        status: {"model": ElevenLabsErrorBody, "description": why} for status, why in whys.items()
    }


_REFUSALS = elevenlabs_refusals(
    {
        401: "No API key, or a wrong one (xi-api-key, X-API-Key or api_key)",
        404: "No such voice",
        413: "The body is over MAX_REQUEST_BYTES",
        422: "A field is missing, malformed or out of range (param names it)",
        503: "No worker ready or every slot busy: retry after Retry-After seconds",
    }
)
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
        return elevenlabs_error(401, "invalid_api_key", refusal)
    try:
        body = await read_json_object(request)
        speech, speed = _speech(voice_id, request.query_params.get("output_format"), body,
                                settings)  # fmt: skip
        utterance = await Utterance.begin(speech, pool, library, speed=speed, timings=timings)
        return utterance, speed
    except InvalidRequest as error:
        return elevenlabs_error(422, "invalid_request", str(error), error.field)
    except SpeechError as error:
        return _refusal(speech_api_error(error))
    except ApiError as error:  # the body: too large, or not a JSON object
        return _refusal(error)


def _refusal(error: ApiError) -> JSONResponse:
    """Ours in ElevenLabs' shape: a refusal by the worker names our parameter."""
    param = THEIR_NAMES.get(error.field or "", error.field)
    return elevenlabs_error(error.status, error.code, error.message, param, error.headers)


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


@router.post(
    BASE, response_class=StreamingResponse, openapi_extra=_BODY,
    responses={**binary("The audio", *AUDIO_TYPES), **_REFUSALS},
)  # fmt: skip
async def convert(
    request: Request, voice_id: str, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> Response:
    """ElevenLabs' text-to-speech: the audio in ``output_format`` (sent as it is generated)."""
    return await _respond(request, voice_id, settings, pool, library, timestamps=False)


class Alignment(BaseModel):
    characters: list[str]
    character_start_times_seconds: list[float]
    character_end_times_seconds: list[float]


class AudioWithTimestamps(BaseModel):
    """ElevenLabs' ``AudioWithTimestampsResponse``."""

    audio_base64: str
    alignment: Alignment | None
    normalized_alignment: Alignment | None


@router.post(
    BASE + "/with-timestamps", openapi_extra=_BODY,
    responses={200: {"model": AudioWithTimestamps, "description": "The whole audio, base64, "
                     "with every character's start and end"}, **_REFUSALS},
)  # fmt: skip
async def convert_with_timestamps(
    request: Request, voice_id: str, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> Response:
    """The whole audio as base64 in one JSON object, with its alignment."""
    begun = await _begin(request, voice_id, settings, pool, library, timings=True)
    if isinstance(begun, JSONResponse):
        return begun
    utterance, speed = begun
    audio, timed, normalized = bytearray(), _Timed(), _Timed()
    try:
        async for data, alignment in _aligned(utterance, speed):
            audio += data
            timed.add(alignment["alignment"])
            normalized.add(alignment["normalizedAlignment"])
    except SpeechError as error:
        return _refusal(speech_api_error(error))
    finally:
        utterance.release()
    body = {"audio_base64": base64.b64encode(bytes(audio)).decode(),
            "alignment": timed.seconds(), "normalized_alignment": normalized.seconds()}  # fmt: skip
    return JSONResponse(body, headers={"X-Request-Id": utterance.request_id})


class _Timed:
    """The WebSocket's per-message millisecond alignments joined into one."""

    def __init__(self) -> None:
        self.parts: dict[str, list[Any]] = {"chars": [], "charStartTimesMs": [],
                                            "charDurationsMs": []}  # fmt: skip

    def add(self, alignment: dict[str, Any] | None) -> None:
        if alignment is not None:
            for key, values in self.parts.items():
                values.extend(alignment[key])

    def seconds(self) -> dict[str, Any] | None:
        return _seconds(self.parts) if self.parts["chars"] else None


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
    async for audio, alignment in _aligned(utterance, speed):
        yield _line(audio, alignment)


async def _aligned(
    utterance: Utterance, speed: float
) -> AsyncIterator[tuple[bytes, dict[str, Any]]]:
    """Each audio chunk with the alignment of the characters that start in it (times from the
    first sample); a last one without audio for characters left over."""
    aligner = Aligner(speed, relative=False)
    async for audio in utterance.audio():
        aligner.feed(utterance.timings)
        yield audio, aligner.message(utterance.audio_seconds * 1000 / aligner.speed)
    aligner.feed(utterance.timings)
    rest = aligner.message(None)
    if rest["alignment"] or rest["normalizedAlignment"]:
        yield b"", rest


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
