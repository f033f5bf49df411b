"""Chatterbox-TTS-Server's routes, as SillyTavern's Chatterbox provider calls them: a thin
adapter over the speech core, served when ``TTS_SERVER_ROUTES`` is on.

- ``GET /api/ui/initial-data`` (SillyTavern 1.13's readiness check), ``GET
  /get_predefined_voices`` (``[{"display_name", "filename"}]``: the preloaded voices) and ``GET
  /get_reference_files`` (``["anna.wav", ...]``: the uploaded ones, SillyTavern's "[Clone]"
  voices); lists, readable without a key with ``PUBLIC_LISTS``.
- ``POST /tts`` (JSON) and ``GET /tts-stream`` (the same fields as a query: the provider's
  "Streaming" method, which plays the URL): the audio streamed as it is generated, where
  Chatterbox-TTS-Server sends the whole clip at the end. They need the key as every synthesis
  does (a browser sends none: docs/API.md, Clients, says how to serve SillyTavern).

Either ``voice_mode`` finds any library voice by its id. Parameters keep their names
(``temperature``, ``exaggeration``, ``cfg_weight``, ``language``: its part before a ``-``), except
``speed_factor``, our tempo, and ``seed``, where 0 or less is random as there. ``split_text``
and ``chunk_size`` are checked and left to our own sentence chunking. Errors are ours (``field``
names the parameter).
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.settings import Settings
from common.validation import first_problem
from common.voices.library import VoiceLibrary

from ..audio.tempo import MAX_SPEED, MIN_SPEED
from ..speech.errors import SpeechError
from ..speech.requests import InvalidRequest, SpeakableText, SpeechRequest, parse_speech_request
from ..speech.utterance import Utterance
from ..web.audio_response import AudioStreamResponse, abort_on_failure
from ..web.auth import check_api_key
from ..web.dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..web.errors import ApiError
from ..web.json_body import read_json_object
from ..web.openapi import errors, json_request, media_types, synthesis

router = APIRouter(tags=["Chatterbox-TTS-Server"])
FORMATS = {"wav": "wav", "opus": "ogg", "mp3": "mp3"}


class TtsBody(BaseModel):
    """Chatterbox-TTS-Server's ``CustomTTSRequest``; its other fields are ignored, as there."""

    model_config = ConfigDict(frozen=True)

    text: SpeakableText
    voice_mode: Literal["predefined", "clone"] = "predefined"
    predefined_voice_id: str | None = Field(None, max_length=255)
    reference_audio_filename: str | None = Field(None, max_length=255)
    output_format: Literal["wav", "opus", "mp3"] = "wav"
    split_text: bool | None = True
    chunk_size: int | None = Field(120, ge=50, le=500)
    temperature: float | None = None
    exaggeration: float | None = None
    cfg_weight: float | None = None
    seed: int | None = None
    speed_factor: float | None = Field(None, ge=MIN_SPEED, le=MAX_SPEED)
    language: str | None = Field(None, max_length=16)

    @property
    def voice_field(self) -> str:
        return (
            "predefined_voice_id" if self.voice_mode == "predefined" else "reference_audio_filename"
        )

    @property
    def voice(self) -> str | None:
        if self.voice_mode == "predefined":
            return self.predefined_voice_id
        return self.reference_audio_filename


def _list_key(request: Request, settings: Settings) -> None:
    if not settings.public_lists:
        check_api_key(request, settings)


def _listing(library: VoiceLibrary, preloaded: bool) -> list[str]:
    return [v.voice_id for v in library.voices() if v.preloaded == preloaded]


def _display_name(voice_id: str) -> str:
    stem = voice_id.rsplit(".", 1)[0] if "." in voice_id else voice_id
    return (
        " ".join(word.capitalize() for word in stem.replace("_", " ").replace("-", " ").split())
        or stem
    )


@router.get("/get_predefined_voices", responses=errors(401, 403))
async def predefined_voices(
    request: Request, settings: SettingsDep, library: LibraryDep
) -> list[dict[str, str]]:
    """The preloaded voices: ``display_name`` and ``filename`` (the voice id)."""
    _list_key(request, settings)
    return [{"display_name": _display_name(v), "filename": v} for v in _listing(library, True)]


@router.get("/get_reference_files", responses=errors(401, 403))
async def reference_files(
    request: Request, settings: SettingsDep, library: LibraryDep
) -> list[str]:
    """The uploaded (cloned) voices' ids."""
    _list_key(request, settings)
    return _listing(library, False)


@router.get("/api/ui/initial-data", responses=errors(401, 403))
async def initial_data(
    request: Request, settings: SettingsDep, library: LibraryDep
) -> dict[str, Any]:
    """What Chatterbox-TTS-Server's page starts from, as far as it exists here: the voices and
    the generation defaults."""
    _list_key(request, settings)
    defaults = settings.synthesis_defaults()
    generation = {"temperature": defaults.temperature, "exaggeration": defaults.exaggeration,
                  "cfg_weight": defaults.cfg_weight, "seed": defaults.seed or 0,
                  "speed_factor": 1.0, "language": defaults.language or "en"}  # fmt: skip
    predefined = [
        {"display_name": _display_name(v), "filename": v} for v in _listing(library, True)
    ]
    return {
        "config": {"generation_defaults": generation},
        "reference_files": _listing(library, False),
        "predefined_voices": predefined,
        "presets": [],
        "initial_gen_result": {},
    }


def _query_parameters() -> list[dict[str, Any]]:
    properties = TtsBody.model_json_schema()["properties"]
    return [
        {"name": name, "in": "query", "required": name == "text", "schema": schema}
        for name, schema in properties.items()
    ]


_AUDIO = synthesis(*media_types(*FORMATS.values()), body=True)


@router.post("/tts", dependencies=[Authorized], response_class=StreamingResponse, responses=_AUDIO,
             openapi_extra=json_request(TtsBody.model_json_schema()))  # fmt: skip
async def tts(
    request: Request, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> StreamingResponse:
    """Speak ``text`` in the voice named, streamed as it is generated."""
    return await _speak(await read_json_object(request), settings, pool, library)


@router.get("/tts-stream", dependencies=[Authorized], response_class=StreamingResponse,
            responses=_AUDIO, openapi_extra={"parameters": _query_parameters()})  # fmt: skip
async def tts_stream(
    request: Request, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> StreamingResponse:
    """``/tts`` with its fields in the query (SillyTavern's "Streaming" method plays this URL)."""
    return await _speak(dict(request.query_params), settings, pool, library)


async def _speak(
    data: dict[str, Any], settings: Settings, pool: PoolDep, library: LibraryDep
) -> StreamingResponse:
    try:
        body, speech = _speech(data, settings)
    except InvalidRequest as error:
        raise ApiError("invalid_request", str(error), error.field) from None
    try:
        utterance = await Utterance.begin(speech, pool, library, speed=body.speed_factor or 1.0)
    except SpeechError as error:
        if error.field != "voice_id":
            raise
        raise _renamed(error, body.voice_field) from None
    headers = {"X-Request-Id": utterance.request_id, "Cache-Control": "no-store",
               "X-Accel-Buffering": "no"}  # fmt: skip
    return AudioStreamResponse(
        abort_on_failure(utterance.request_id, utterance.audio()),
        on_close=utterance.release, media_type=utterance.media_type, headers=headers,
    )  # fmt: skip


def _renamed(error: SpeechError, field: str) -> SpeechError:
    """The voice's refusal naming the field the client sent it in."""
    message = error.message.replace("voice_id", field)
    return SpeechError(error.code, message, field, error.retry_after)


def _speech(data: dict[str, Any], settings: Settings) -> tuple[TtsBody, SpeechRequest]:
    """The body and our request for Chatterbox-TTS-Server's fields (InvalidRequest naming one)."""
    try:
        body = TtsBody.model_validate(data)
    except ValidationError as error:
        field, message = first_problem(error.errors())
        raise InvalidRequest(field and field.split(".")[0], message) from None
    if body.voice is None:
        raise InvalidRequest(body.voice_field, f"{body.voice_field} is required in "
                             f"voice_mode {body.voice_mode!r}")  # fmt: skip
    ours: dict[str, Any] = {
        "text": body.text, "voice_id": body.voice, "format": FORMATS[body.output_format],
        "temperature": body.temperature, "exaggeration": body.exaggeration,
        "cfg_weight": body.cfg_weight, "seed": body.seed if body.seed and body.seed > 0 else None,
        "language": body.language.split("-")[0].lower() if body.language else None,
    }  # fmt: skip
    try:
        speech = parse_speech_request({k: v for k, v in ours.items() if v is not None}, settings)
    except InvalidRequest as error:
        field = body.voice_field if error.field == "voice_id" else error.field
        raise InvalidRequest(field, str(error).replace("voice_id", field or "voice_id")) from None
    return body, speech
