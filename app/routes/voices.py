"""``/voices``: upload, list, inspect, download and delete cloned voices (common.voice_library).

Every check runs before anything is written: size (413), decodable audio (415), length and level
(422), name (400); then the original is stored atomically (409 if the id exists and
``overwrite`` is not set), its cloning clip prepared, and every worker told over PUB/SUB.
"""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import FileResponse

from common.settings import Settings
from common.voice_library import (
    MODEL_USES_SECONDS,
    RATE,
    Voice,
    VoiceError,
    VoiceLibrary,
    decode,
    level_db,
    prepare_clip,
    sanitize_voice_id,
    sniff_suffix,
    trim_silence,
)

from ..dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..errors import ApiError
from ..pool import WorkerPool

router = APIRouter(dependencies=[Authorized])
SILENT_DB = -50.0
MIN_SECONDS = {"chatterbox-turbo": 5.0}  # Turbo needs more than 5 s; the others 1 s
DEFAULT_MIN_SECONDS = 1.0
MEDIA_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac",
               ".ogg": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4",
               ".aac": "audio/aac", ".webm": "audio/webm"}  # fmt: skip


def api_error(error: VoiceError) -> ApiError:
    codes = {400: "invalid_voice_id", 403: "read_only", 404: "voice_not_found", 409: "conflict",
             413: "too_large", 415: "unsupported_media_type", 422: "invalid_request"}  # fmt: skip
    code = codes.get(error.status, "invalid_request")
    return ApiError(error.status, code, str(error), error.field)


@router.post("/voices", status_code=201)
async def upload_voice(
    library: LibraryDep,
    settings: SettingsDep,
    pool: PoolDep,
    file: Annotated[UploadFile, File(description="the reference clip")],
    voice_id: Annotated[str | None, Form()] = None,
    overwrite: Annotated[bool, Query()] = False,
    overwrite_form: Annotated[bool | None, Form(alias="overwrite")] = None,
) -> dict[str, Any]:
    """Store a reference clip as a voice; its id is the (sanitized) file name."""
    try:
        data = await file.read(settings.max_voice_upload_bytes + 1)
        name = voice_id or file.filename or ""
        suffix = Path(file.filename or "").suffix or await asyncio.to_thread(sniff_suffix, data)
        name = sanitize_voice_id(name, suffix)
        wav = await asyncio.to_thread(_validated_audio, data, settings, _variant(pool, settings))
        voice = await asyncio.to_thread(library.add, name, data, bool(overwrite or overwrite_form))
        clip, digest = await asyncio.to_thread(library.prepared_clip, voice, wav)
    except VoiceError as error:
        raise api_error(error) from None
    pool.voice_changed(voice.voice_id, str(clip), digest)
    seconds = len(wav) / RATE
    notes = []
    if seconds > MODEL_USES_SECONDS:
        notes.append(
            f"the clip is {seconds:.1f} s long; the model uses only its first "
            f"{MODEL_USES_SECONDS:.0f} s (after trimming silence): put the best part first"
        )
    return {
        "voice_id": voice.voice_id,
        "message": "Voice uploaded successfully.",
        "duration_seconds": round(seconds, 2),
        "notes": notes,
    }


def _validated_audio(data: bytes, settings: Settings, variant: str) -> np.ndarray:
    if len(data) > settings.max_voice_upload_bytes:
        raise VoiceError(413, f"the file is over {settings.max_voice_upload_bytes} bytes", "file")
    if not data:
        raise VoiceError(415, "the file is empty", "file")
    wav = decode(data)
    seconds = len(wav) / RATE
    shortest = MIN_SECONDS.get(variant, DEFAULT_MIN_SECONDS)
    if seconds > settings.max_voice_seconds:
        raise VoiceError(
            422, f"the clip is {seconds:.1f} s; the limit is {settings.max_voice_seconds:g} s "
            "(MAX_VOICE_SECONDS); 10-20 s of clean speech is ideal", "file",
        )  # fmt: skip
    speech = trim_silence(wav)
    if level_db(wav) < SILENT_DB or level_db(speech) < SILENT_DB:
        raise VoiceError(422, "the clip is silent (or nearly): record someone speaking", "file")
    if len(speech) / RATE <= shortest:
        raise VoiceError(
            422, f"the clip has {len(speech) / RATE:.1f} s of sound; {variant} needs more than "
            f"{shortest:g} s", "file",
        )  # fmt: skip
    return prepare_clip(wav)


def _variant(pool: WorkerPool, settings: Settings) -> str:
    for handle in pool.handles:
        if handle.variant:
            return handle.variant
    return settings.model_variant.value if settings.model_variant else "chatterbox"


@router.get("/voices")
async def list_voices(
    library: LibraryDep, details: bool = False
) -> list[str] | list[dict[str, Any]]:
    """Voice ids (the specification's answer), or with ``details=true`` what is known of each."""
    voices = await asyncio.to_thread(library.voices)
    if not details:
        return [voice.voice_id for voice in voices]
    return [await asyncio.to_thread(_describe, library, voice) for voice in voices]


@router.get("/voices/{voice_id}")
async def get_voice(voice_id: str, library: LibraryDep) -> dict[str, Any]:
    voice = _find(library, voice_id)
    return await asyncio.to_thread(_describe, library, voice)


@router.get("/voices/{voice_id}/audio")
async def voice_audio(voice_id: str, library: LibraryDep) -> FileResponse:
    """The original reference clip, as uploaded."""
    voice = _find(library, voice_id)
    media_type = MEDIA_TYPES.get(voice.path.suffix.lower(), "application/octet-stream")
    return FileResponse(voice.path, media_type=media_type, filename=voice.voice_id)


@router.delete("/voices/{voice_id}")
async def delete_voice(voice_id: str, library: LibraryDep, pool: PoolDep) -> dict[str, str]:
    try:
        voice = await asyncio.to_thread(library.delete, voice_id)
    except VoiceError as error:
        raise api_error(error) from None
    pool.voice_changed(voice.voice_id)
    return {"message": f"Voice '{voice.voice_id}' deleted successfully."}


def _find(library: VoiceLibrary, voice_id: str) -> Voice:
    try:
        return library.find(voice_id)
    except VoiceError as error:
        raise api_error(error) from None


def _describe(library: VoiceLibrary, voice: Voice) -> dict[str, Any]:
    details: dict[str, Any] = {
        "voice_id": voice.voice_id,
        "preloaded": voice.preloaded,
        "size_bytes": voice.size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(voice.created)),
        "sample_rate": RATE,
    }
    try:
        clip, _ = library.prepared_clip(voice)
    except VoiceError as error:  # a file put there by hand that is not usable audio
        return {**details, "usable": False, "error": str(error)}
    return {
        **details,
        "usable": True,
        "duration_seconds": round(_wav_seconds(clip), 2),
        "prepared_for": library.variants_prepared(voice),
    }


def _wav_seconds(path: Any) -> float:
    with wave.open(str(path), "rb") as clip:
        return clip.getnframes() / clip.getframerate()
