"""Speech to speech (voice conversion): a recording re-spoken in a library voice, streamed.

- ours, ``POST /vc/convert``: multipart ``audio`` (the recording), ``voice_id`` (else the
  model's built-in voice), ``output_format`` (one of our formats, default ``wav``),
  ``sample_rate``, ``seed``; our error shape;
- ElevenLabs', as its SDKs call it: ``POST /v1/speech-to-speech/{voice_id}`` and ``.../stream``,
  and the same under ``/v1/voice-changer/`` (the name the 2.x Python SDK uses): multipart
  ``audio``, ``model_id``, ``voice_settings``, ``seed``, ``remove_background_noise``,
  ``file_format`` (``pcm_s16le_16``: headerless 16-bit mono 16 kHz; else any audio file), and
  ``output_format`` in the query; ElevenLabs' error shape. ``model_id``, ``voice_settings`` and
  ``remove_background_noise`` are accepted and do nothing here (the model is the one served).

The recording is checked as a voice upload is (app/speech/source_audio.py), read into memory
(app/web/memory_form.py) and handed to the worker whole with its Job: nothing is written.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError

from common.settings import Settings
from common.validation import first_problem
from common.voices.errors import VoiceError

from ..pool import WorkerPool
from ..speech.errors import SpeechError
from ..speech.requests import InvalidRequest, SpeechRequest, parse_speech_request
from ..speech.source_audio import FIELD, RAW_PCM, check_source, conversion_refusal
from ..speech.utterance import Utterance
from ..web.audio_response import AudioStreamResponse, abort_on_failure
from ..web.dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..web.errors import ApiError, speech_api_error
from ..web.memory_form import MemoryForm, read_memory_form
from ..web.openapi import AUDIO_TYPES, binary, errors
from .elevenlabs_formats import BadSetting, output_format
from .elevenlabs_http import elevenlabs_error, elevenlabs_refusals
from .elevenlabs_ws import elevenlabs_key_problem

router = APIRouter()
ELEVENLABS_PATHS = ("/v1/speech-to-speech/{voice_id}", "/v1/voice-changer/{voice_id}")
SOURCE_CODES = {"too_large": "too_large", "not_audio": "unsupported_media_type",
                "unusable_audio": "invalid_request"}  # fmt: skip
_FORM = {"audio": {"type": "string", "format": "binary", "description": "the recording"}}


def _multipart(**fields: Any) -> dict[str, Any]:
    schema = {"type": "object", "required": ["audio"], "properties": {**_FORM, **fields}}
    content = {"multipart/form-data": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


_OURS = _multipart(
    voice_id={"type": "string"}, output_format={"type": "string", "default": "wav"},
    sample_rate={"type": "integer"}, seed={"type": "integer"},
)  # fmt: skip
_THEIRS = _multipart(
    model_id={"type": "string"}, voice_settings={"type": "string"}, seed={"type": "integer"},
    remove_background_noise={"type": "boolean"},
    file_format={"type": "string", "enum": [RAW_PCM, "other"]},
)  # fmt: skip
_THEIR_REFUSALS = elevenlabs_refusals(
    {
        400: "The body is not a form that can be parsed",
        401: "No API key, or a wrong one (xi-api-key, X-API-Key or api_key)",
        404: "No such voice",
        413: "The upload is over MAX_VOICE_UPLOAD_BYTES",
        415: "The request is not multipart/form-data, or the audio is empty or not audio",
        422: "A field is missing, malformed or out of range (param names it), the audio too "
        "long or silent, or the model cannot convert voices",
        500: "The worker failed unexpectedly",
        503: "No worker ready or every slot busy: retry after Retry-After seconds",
    }
)


async def _source(form: MemoryForm, settings: Settings, raw: bool) -> bytes:
    if FIELD not in form.files:
        raise InvalidRequest(FIELD, "audio is required: the recording, as a file field")
    return await asyncio.to_thread(
        check_source, form.files[FIELD], settings.max_voice_upload_bytes,
        settings.max_voice_seconds, raw,
    )  # fmt: skip


def _refuse_model(pool: WorkerPool) -> None:
    if (refusal := conversion_refusal(pool.status().variant)) is not None:
        raise InvalidRequest("model", refusal)


@router.post(
    "/vc/convert", response_class=StreamingResponse, dependencies=[Authorized],
    openapi_extra=_OURS, responses={
        **binary("The converted audio, streamed as it is made", *AUDIO_TYPES),
        **errors(400, 401, 403, 404, 413, 415, 422, 500, 503),
    },
)  # fmt: skip
async def convert(
    request: Request, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> Response:
    """Re-speak the recording in ``voice_id``'s voice: the audio in ``output_format``."""
    form = await read_memory_form(request)
    try:
        _refuse_model(pool)
        fields = {"voice_id": form.fields.get("voice_id"), "seed": form.fields.get("seed"),
                  "format": form.fields.get("output_format"),
                  "sample_rate": form.fields.get("sample_rate")}  # fmt: skip
        speech = parse_speech_request({k: v for k, v in fields.items() if v}, settings, False)
        speech.source = await _source(form, settings, raw=False)
        utterance = await Utterance.begin(speech, pool, library)
    except InvalidRequest as error:
        field = "output_format" if error.field == "format" else error.field
        raise ApiError("invalid_request", str(error), field) from None
    except VoiceError as error:
        raise ApiError(SOURCE_CODES[error.kind], str(error), error.field) from None
    except SpeechError as error:
        raise speech_api_error(error) from None
    return _audio(utterance)


def _audio(utterance: Utterance) -> Response:
    return AudioStreamResponse(
        abort_on_failure(utterance.request_id, utterance.audio()),
        on_close=utterance.release,
        media_type=utterance.media_type,
        headers={"X-Request-Id": utterance.request_id},
    )


async def _theirs(
    request: Request, voice_id: str, settings: Settings, pool: WorkerPool, library: LibraryDep
) -> Response:
    """ElevenLabs' speech to speech: the audio, or the refusal in ElevenLabs' shape."""
    if (refusal := elevenlabs_key_problem(request, settings)) is not None:
        return elevenlabs_error(401, "invalid_api_key", refusal)
    try:
        form = await read_memory_form(request)
        speech = _their_request(voice_id, request.query_params.get("output_format"), form,
                                settings)  # fmt: skip
        _refuse_model(pool)
        raw = form.fields.get("file_format") == RAW_PCM
        speech.source = await _source(form, settings, raw)
        utterance = await Utterance.begin(speech, pool, library)
    except InvalidRequest as error:
        return elevenlabs_error(422, "invalid_request", str(error), error.field)
    except VoiceError as error:
        return _their_error(ApiError(SOURCE_CODES[error.kind], str(error), error.field))
    except SpeechError as error:
        return _their_error(speech_api_error(error))
    except ApiError as error:  # the form: not one, or unparsable
        return _their_error(error)
    return _audio(utterance)


def _their_error(error: ApiError) -> JSONResponse:
    return elevenlabs_error(error.status, error.code, error.message, error.field, error.headers)


def _their_request(
    voice_id: str, query: str | None, form: MemoryForm, settings: Settings
) -> SpeechRequest:
    try:
        audio_format, rate = output_format(query or form.fields.get("output_format"))
    except BadSetting as error:
        raise InvalidRequest("output_format", str(error)) from None
    file_format = form.fields.get("file_format") or "other"
    if file_format not in (RAW_PCM, "other"):
        raise InvalidRequest("file_format", f"file_format must be {RAW_PCM!r} or 'other'")
    seed = form.fields.get("seed") or None
    try:
        params = settings.synthesis_defaults(seed=None if seed is None else int(seed))
    except (ValueError, ValidationError) as error:
        message = first_problem(error.errors())[1] if isinstance(error, ValidationError) else ""
        raise InvalidRequest("seed", message or "seed must be a whole number") from None
    request = parse_speech_request({"voice_id": voice_id}, settings, text_required=False)
    return SpeechRequest(None, request.voice_id, audio_format, rate, params)


def _their_route(path: str, streamed: bool) -> None:
    summary = "streamed as it is made" if streamed else "sent as it is made"

    async def speech_to_speech(
        request: Request, voice_id: str, settings: SettingsDep, pool: PoolDep,
        library: LibraryDep,
    ) -> Response:  # fmt: skip
        return await _theirs(request, voice_id, settings, pool, library)

    speech_to_speech.__doc__ = f"ElevenLabs' speech to speech: the converted audio, {summary}."
    router.post(
        path, response_class=StreamingResponse, openapi_extra=_THEIRS,
        name=f"{path.split('/')[2]}{'_stream' if streamed else ''}",
        responses={**binary("The converted audio", *AUDIO_TYPES), **_THEIR_REFUSALS},
    )(speech_to_speech)  # fmt: skip


for _path in ELEVENLABS_PATHS:
    _their_route(_path, streamed=False)
    _their_route(_path + "/stream", streamed=True)
