"""OpenAI's speech API (``/v1/audio/speech``, ``/v1/models``, ``/v1/audio/voices``), so clients
built for it (the OpenAI SDKs, Open WebUI, SillyTavern, LiveKit and Pipecat plugins) work by
changing their base URL. Errors here use OpenAI's shape: ``{"error": {"message", "type",
"param", "code"}}``; the key may come as ``Authorization: Bearer KEY`` too.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.openai_voices import OPENAI_VOICES
from common.params import SynthesisParams
from common.settings import Settings
from common.validation import first_problem, printable
from common.variants import Variant
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary, check_voice_id

from ..audio.tempo import MAX_SPEED, MIN_SPEED
from ..speech.errors import SpeechError
from ..speech.requests import SpeechRequest
from ..speech.source_audio import conversion_refusal
from ..speech.utterance import Utterance
from ..web.audio_response import AudioStreamResponse, abort_on_failure
from ..web.auth import check_api_key
from ..web.dependencies import HeaderKey, LibraryDep, PoolDep, QueryKey, SettingsDep
from ..web.errors import ApiError, speech_api_error
from ..web.json_body import read_json_object
from ..web.openapi import SSE, errors, json_request, media_types, synthesis
from . import openai_voices
from .elevenlabs_ws import elevenlabs_key_problem

FORMATS = {"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac", "wav": "wav",
           "pcm": "raw_pcm"}  # fmt: skip
MODEL_ALIASES = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")


class OpenAIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        param: str | None,
        code: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        message, param = printable(message), printable(param) if param else param
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers

    @classmethod
    def from_api_error(cls, error: ApiError) -> OpenAIError:
        """Our error in OpenAI's terms: their clients expect 400 for every bad request."""
        status = 400 if error.status == 422 else error.status
        return cls(status, error.message, _param(error.field), error.code, error.headers)

    def response(self) -> JSONResponse:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status, headers=self.headers)


BearerKey = Annotated[HTTPAuthorizationCredentials | None, Security(HTTPBearer(auto_error=False))]


def openai_auth(
    request: Request,
    settings: SettingsDep,
    _bearer: BearerKey,
    _header: HeaderKey,
    _query: QueryKey,
) -> None:
    """X-API-Key, api_key, or else OpenAI's ``Authorization: Bearer KEY``.

    An explicit key wins: behind RunPod's load balancer the Authorization header may carry
    RunPod's own key, and the service's key then comes as X-API-Key or api_key.
    """
    bearer = request.headers.get("authorization", "")
    explicit = "x-api-key" in request.headers or "api_key" in request.query_params
    if bearer.lower().startswith("bearer ") and not explicit:
        scope = dict(request.scope)
        scope["headers"] = [*request.scope["headers"], (b"x-api-key", bearer[7:].encode())]
        request = Request(scope)
    try:
        check_api_key(request, settings)
    except ApiError:
        message = "Incorrect or missing API key: send it as Authorization: Bearer KEY"
        raise OpenAIError(401, message, None, "invalid_api_key") from None


def openai_list_auth(
    request: Request, settings: SettingsDep, _bearer: BearerKey, _header: HeaderKey,
    _query: QueryKey,
) -> None:  # fmt: skip
    """The key for a list: none with ``PUBLIC_LISTS`` (Open WebUI lists without one); an
    ElevenLabs client's ``xi-api-key`` is taken too (it lists models here)."""
    if settings.public_lists:
        return
    if "xi-api-key" in request.headers:
        if (problem := elevenlabs_key_problem(request, settings)) is not None:
            raise OpenAIError(401, problem, None, "invalid_api_key")
        return
    openai_auth(request, settings, _bearer, _header, _query)


router = APIRouter(prefix="/v1")


class CustomVoice(BaseModel):
    """A custom voice as the OpenAI SDKs type it (Node 7.x: ``voice: {id: "anna.wav"}``)."""

    model_config = ConfigDict(extra="forbid")

    id: str


class SpeechBody(BaseModel):
    """OpenAI's request schema (``instructions`` is accepted; Chatterbox has no such control).
    Any of our synthesis parameters (``seed``, ``exaggeration`` ...) may ride along, as the
    SDKs' ``extra_body``."""

    model_config = ConfigDict(extra="allow")

    model: str = "tts-1"
    input: str = Field(min_length=1)
    voice: str | CustomVoice = "alloy"
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float = Field(1.0, ge=MIN_SPEED, le=MAX_SPEED)
    stream_format: Literal["audio", "sse"] = "audio"
    instructions: str | None = None

    @property
    def voice_name(self) -> str:
        return self.voice if isinstance(self.voice, str) else self.voice.id


@router.post(
    "/audio/speech",
    dependencies=[Depends(openai_auth)],
    response_class=StreamingResponse,
    responses=synthesis(*media_types(*FORMATS.values()), SSE, openai=True, body=True),
    openapi_extra=json_request(SpeechBody.model_json_schema()),
)
async def speech(
    request: Request, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> StreamingResponse:
    body = await _body(request, settings)
    speech_request = SpeechRequest(
        text=body.input,
        voice_id=_voice_id(body.voice_name, settings, library),
        audio_format=FORMATS[body.response_format],
        sample_rate=None,
        params=_params(body, settings),
    )
    try:
        utterance = await Utterance.begin(speech_request, pool, library, speed=body.speed)
    except SpeechError as error:
        raise OpenAIError.from_api_error(speech_api_error(error)) from None
    headers = {"X-Request-Id": utterance.request_id, "Cache-Control": "no-store",
               "X-Accel-Buffering": "no"}  # fmt: skip
    if body.stream_format == "sse":
        return AudioStreamResponse(
            _sse(utterance.audio()), on_close=utterance.release, media_type=SSE, headers=headers
        )
    return AudioStreamResponse(
        abort_on_failure(utterance.request_id, utterance.audio()),
        on_close=utterance.release, media_type=utterance.media_type, headers=headers,
    )  # fmt: skip


async def _body(request: Request, settings: Settings) -> SpeechBody:
    try:
        data = await read_json_object(request)
    except ApiError as error:  # too large (413), or not a JSON object within bounds
        if error.status == 413:
            raise OpenAIError.from_api_error(error) from None
        raise OpenAIError(400, error.message, None, "invalid_json") from None
    try:
        body = SpeechBody.model_validate(data)
    except ValidationError as error:
        raise _invalid_value(error) from None
    if len(body.input) > settings.openai_max_input_chars:
        raise OpenAIError(
            400, f"input is {len(body.input)} characters; the limit is "
            f"{settings.openai_max_input_chars}", "input", "string_above_max_length",
        )  # fmt: skip
    return body


def _params(body: SpeechBody, settings: Settings) -> SynthesisParams:
    extra = dict(body.model_extra or {})
    try:
        return settings.synthesis_defaults(**extra)
    except ValidationError as error:
        raise _invalid_value(error) from None


def _invalid_value(error: ValidationError) -> OpenAIError:
    param, message = first_problem(error.errors())
    if param is not None and param.split(".")[0] == "voice":  # neither of its two shapes
        param, message = "voice", 'voice must be a voice id or {"id": VOICE_ID}'
    return OpenAIError(400, message, param, "invalid_value")


def _voice_id(voice: str, settings: Settings, library: VoiceLibrary) -> str | None:
    """Our voice id for OpenAI's ``voice``: its names speak what openai_voices.py says."""
    if voice.lower() in OPENAI_VOICES:
        return openai_voices.voice_for(voice.lower(), settings, library)
    try:
        return check_voice_id(voice)
    except VoiceError as error:
        raise OpenAIError(400, str(error), "voice", "invalid_value") from None


def _param(field: str | None) -> str | None:
    return {"voice_id": "voice", "text": "input"}.get(field or "", field)


async def _sse(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """OpenAI's SSE stream: ``speech.audio.delta`` events with base64 audio, then ``done``."""
    try:
        async for data in chunks:
            event = {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode()}
            yield f"data: {json.dumps(event)}\n\n".encode()
    except SpeechError as error:
        failure = {"type": "error", "error": {"message": str(error), "code": error.code}}
        yield f"data: {json.dumps(failure)}\n\n".encode()
        return
    done = {"type": "speech.audio.done",
            "usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}}  # fmt: skip
    yield f"data: {json.dumps(done)}\n\n".encode()


_LIST_AUTH = [Depends(openai_list_auth)]


def _model_ids(pool: PoolDep, settings: Settings) -> list[dict[str, Any]]:
    """Our model (named once a worker has loaded it), then OpenAI's names, which speak it too."""
    status = pool.status()
    served = status.variant or (settings.model_variant or Variant.ENGLISH).value
    converts = conversion_refusal(served) is None  # speech to speech (app/protocols/...)
    ids: list[dict[str, Any]] = [
        {"id": name, "voice_conversion": converts} for name in (served, *MODEL_ALIASES)
    ]
    if (model := status.served_model) is not None:
        ids[0].update(name=model.label, repo_id=model.repo_id)
    return ids


@router.get("/models", dependencies=_LIST_AUTH, responses=errors(401, openai=True))
async def models(
    request: Request, pool: PoolDep, settings: SettingsDep
) -> dict[str, Any] | list[dict[str, Any]]:
    """OpenAI's model list; ElevenLabs' (a JSON array) to a client that sends ``xi-api-key``
    (Open WebUI's ElevenLabs engine reads ``model_id`` and ``name`` of each)."""
    ids = _model_ids(pool, settings)
    if "xi-api-key" in request.headers:
        return [{"model_id": m["id"], "name": m.get("name", m["id"]),
                 "can_do_text_to_speech": True,
                 "can_do_voice_conversion": m["voice_conversion"]} for m in ids]  # fmt: skip
    entry = {"object": "model", "created": 0, "owned_by": "resemble-ai"}
    return {"object": "list", "data": [{**m, **entry} for m in ids]}


@router.get("/audio/models", dependencies=_LIST_AUTH, responses=errors(401, openai=True))
async def audio_models(pool: PoolDep, settings: SettingsDep) -> dict[str, Any]:
    """The speech models as Open WebUI lists them: ``{"models": [{"id"}]}``."""
    return {"models": _model_ids(pool, settings)}


@router.get("/audio/voices", dependencies=_LIST_AUTH, responses=errors(401, openai=True))
async def voices(library: LibraryDep, settings: SettingsDep) -> dict[str, Any]:
    """Every library voice, then OpenAI's names: each with ``id`` and ``name`` (Open WebUI) and
    ``voice_id``."""
    ours = [{"voice_id": v.voice_id, "name": v.voice_id} for v in library.voices()]
    return {
        "voices": [
            {"id": v["voice_id"], **v} for v in ours + openai_voices.listing(settings, library)
        ]
    }


def install(app: Any) -> None:
    async def handler(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, OpenAIError)
        return error.response()

    app.add_exception_handler(OpenAIError, handler)
    app.include_router(router)
    openai_voices.warn_about_missing(app.state.settings, app.state.library)
