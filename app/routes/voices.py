"""``/voices``: upload, list, inspect, download and delete cloned voices (common.voices.library).

Every check runs before anything is written: size (413), decodable audio (415), length and level
(422), name (400); then the original is stored atomically (409 if the id exists and
``overwrite`` is not set), its cloning clip prepared, and every worker told over PUB/SUB.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from common.audio import SAMPLE_RATE
from common.settings import Settings
from common.variants import REFERENCE_WINDOW_SECONDS, Variant
from common.voices.clips import check_upload, clip_seconds, sniff_suffix
from common.voices.errors import VoiceError
from common.voices.library import Voice, VoiceLibrary, sanitize_voice_id

from ..pool import WorkerPool
from ..web.dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..web.errors import voice_api_error
from ..web.openapi import binary, errors

router = APIRouter(dependencies=[Authorized])
VoiceId = Annotated[
    str, PathParam(description="a voice id; the extension may be left out", examples=["anna.wav"])
]
MEDIA_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac",
               ".ogg": "audio/ogg", ".opus": "audio/ogg", ".m4a": "audio/mp4",
               ".aac": "audio/aac", ".webm": "audio/webm"}  # fmt: skip
OTHER_TYPE = "application/octet-stream"
ONE_VOICE = errors(400, 401, 403, 404)
CLIP = {
    **binary("The clip as uploaded", *sorted(set(MEDIA_TYPES.values())), OTHER_TYPE),
    **ONE_VOICE,
}


@router.post("/voices", status_code=201, responses=errors(400, 401, 403, 409, 413, 415, 422))
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
        wav = await asyncio.to_thread(
            check_upload,
            data,
            settings.max_voice_upload_bytes,
            settings.max_voice_seconds,
            _variant(pool, settings),
        )
        voice = await asyncio.to_thread(library.add, name, data, bool(overwrite or overwrite_form))
        clip, digest = await asyncio.to_thread(library.prepared_clip, voice, wav)
    except VoiceError as error:
        raise voice_api_error(error) from None
    pool.voice_changed(voice.voice_id, str(clip), digest)
    seconds = len(wav) / SAMPLE_RATE
    notes = []
    if seconds > REFERENCE_WINDOW_SECONDS:
        notes.append(
            f"the clip is {seconds:.1f} s long; the model uses only its first "
            f"{REFERENCE_WINDOW_SECONDS:.0f} s: put the best part first"
        )
    return {
        "voice_id": voice.voice_id,
        "message": "Voice uploaded successfully.",
        "duration_seconds": round(seconds, 2),
        "notes": notes,
    }


def _variant(pool: WorkerPool, settings: Settings) -> Variant:
    served = pool.status().variant
    return Variant(served) if served else settings.model_variant or Variant.ENGLISH


@router.get("/voices", responses=errors(401, 403, 422))
async def list_voices(
    library: LibraryDep, details: bool = False
) -> list[str] | list[dict[str, Any]]:
    """Voice ids (the specification's answer), or with ``details=true`` what is known of each."""
    voices = await asyncio.to_thread(library.voices)
    if not details:
        return [voice.voice_id for voice in voices]
    described = []
    for voice in voices:
        with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
            described.append(await asyncio.to_thread(_describe, library, voice))
    return described


@router.get("/voices/{voice_id}", responses=ONE_VOICE)
async def get_voice(voice_id: VoiceId, library: LibraryDep) -> dict[str, Any]:
    voice = _find(library, voice_id)
    try:
        return await asyncio.to_thread(_describe, library, voice)
    except FileNotFoundError:  # deleted meanwhile
        raise voice_api_error(_gone(voice)) from None


@router.get("/voices/{voice_id}/audio", response_class=FileResponse, responses=CLIP)
async def voice_audio(voice_id: VoiceId, library: LibraryDep) -> FileResponse:
    """The original reference clip, as uploaded."""
    voice = _find(library, voice_id)
    try:
        stat = await asyncio.to_thread(voice.path.stat)
    except FileNotFoundError:  # deleted meanwhile
        raise voice_api_error(_gone(voice)) from None
    media_type = MEDIA_TYPES.get(voice.path.suffix.lower(), OTHER_TYPE)
    return FileResponse(
        voice.path, media_type=media_type, filename=voice.voice_id, stat_result=stat
    )


@router.delete("/voices/{voice_id}", responses=ONE_VOICE)
async def delete_voice(voice_id: VoiceId, library: LibraryDep, pool: PoolDep) -> dict[str, str]:
    try:
        voice = await asyncio.to_thread(library.delete, voice_id)
    except VoiceError as error:
        raise voice_api_error(error) from None
    pool.voice_changed(voice.voice_id)
    return {"message": f"Voice '{voice.voice_id}' deleted successfully."}


def _find(library: VoiceLibrary, voice_id: str) -> Voice:
    try:
        return library.find(voice_id)
    except VoiceError as error:
        raise voice_api_error(error) from None


def _gone(voice: Voice) -> VoiceError:
    return VoiceError("not_found", f"voice {voice.voice_id!r} not found")


def _describe(library: VoiceLibrary, voice: Voice) -> dict[str, Any]:
    details: dict[str, Any] = {
        "voice_id": voice.voice_id,
        "preloaded": voice.preloaded,
        "size_bytes": voice.size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(voice.created)),
        "sample_rate": SAMPLE_RATE,
    }
    try:
        clip, _ = library.prepared_clip(voice)
    except VoiceError as error:  # a file put there by hand that is not usable audio
        return {**details, "usable": False, "error": str(error)}
    return {
        **details,
        "usable": True,
        "duration_seconds": round(clip_seconds(clip), 2),
        "prepared_for": library.variants_prepared(voice),
    }
