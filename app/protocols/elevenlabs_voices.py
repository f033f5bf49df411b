"""ElevenLabs' voice listing (``GET /v1/voices``, ``GET /v2/voices``, ``GET /v1/voices/{id}``)
over the voice library, in ElevenLabs' shapes, as the ``elevenlabs`` SDKs' ``voices.get_all``,
``voices.search`` and ``voices.get`` (and Open WebUI's ElevenLabs engine) read them.

A voice's ``voice_id`` and ``name`` are its id here (``anna.wav``); uploaded voices are
``cloned``, preloaded ones ``premade``. ``/v2/voices`` honours ``search`` (in the id, any case),
``page_size`` (1-100, default 10), ``next_page_token`` (as returned), ``sort`` (``name`` or
``created_at_unix``), ``sort_direction``, ``category`` and ``voice_ids`` (``total_count`` is
always counted); ElevenLabs' other filters (``gender``, ``accent`` ...) describe nothing here and
are ignored. With ``PUBLIC_LISTS`` these are readable without a key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from common.settings import Settings
from common.validation import first_problem
from common.voices.errors import VoiceError
from common.voices.library import Voice, VoiceLibrary

from ..web.dependencies import LibraryDep, SettingsDep
from ..web.openapi import Responses
from .elevenlabs_http import elevenlabs_error, elevenlabs_refusals
from .elevenlabs_ws import elevenlabs_key_problem

router = APIRouter(tags=["ElevenLabs"])


class ElevenLabsVoice(BaseModel):
    """The fields of ElevenLabs' ``Voice`` that say something here."""

    voice_id: str
    name: str
    category: Literal["cloned", "premade"]
    labels: dict[str, str]
    description: str | None
    preview_url: str | None
    created_at_unix: int
    is_owner: bool


class VoicesResponse(BaseModel):
    voices: list[ElevenLabsVoice]


class VoicesSearchResponse(BaseModel):
    """ElevenLabs' ``GetVoicesV2Response``."""

    voices: list[ElevenLabsVoice]
    has_more: bool
    total_count: int
    next_page_token: str | None


class SearchQuery(BaseModel):
    """``/v2/voices``' query parameters in use (the others are ignored)."""

    model_config = ConfigDict(frozen=True)

    search: str | None = Field(None, max_length=200)
    page_size: int = Field(10, ge=1, le=100)
    next_page_token: str | None = Field(None, pattern=r"^[0-9]{1,9}$")
    sort: Literal["name", "created_at_unix"] = "name"
    sort_direction: Literal["asc", "desc"] = "asc"
    category: str | None = Field(None, max_length=40)
    voice_ids: list[str] | None = Field(None, max_length=100)


def _refusals(*statuses: int) -> Responses:
    why = {401: "No API key, or a wrong one (unless PUBLIC_LISTS)", 404: "No such voice",
           422: "A query parameter is malformed or out of range (param names it)"}  # fmt: skip
    return elevenlabs_refusals({status: why[status] for status in statuses})


def _key_refusal(request: Request, settings: Settings) -> JSONResponse | None:
    if settings.public_lists:
        return None
    problem = elevenlabs_key_problem(request, settings)
    return None if problem is None else elevenlabs_error(401, "invalid_api_key", problem)


def _voice(voice: Voice) -> dict[str, Any]:
    return {
        "voice_id": voice.voice_id,
        "name": voice.voice_id,
        "category": "premade" if voice.preloaded else "cloned",
        "labels": {},
        "description": None,
        "preview_url": None,
        "created_at_unix": int(voice.created),
        "is_owner": not voice.preloaded,
    }


def _listed(library: VoiceLibrary) -> list[dict[str, Any]]:
    """Every voice still on disk (one deleted while it was listed is left out)."""
    listed = []
    for voice in library.voices():
        try:
            listed.append(_voice(voice))
        except FileNotFoundError:
            continue
    return listed


@router.get("/v1/voices", response_model=VoicesResponse, responses=_refusals(401))
async def voices(request: Request, settings: SettingsDep, library: LibraryDep) -> Any:
    """Every voice in the library (ElevenLabs' ``voices.get_all``)."""
    return _key_refusal(request, settings) or {"voices": _listed(library)}


@router.get("/v1/voices/{voice_id}", response_model=ElevenLabsVoice, responses=_refusals(401, 404))
async def voice(request: Request, voice_id: str, settings: SettingsDep, library: LibraryDep) -> Any:
    """One voice (ElevenLabs' ``voices.get``)."""
    if (refusal := _key_refusal(request, settings)) is not None:
        return refusal
    try:
        return _voice(library.find(voice_id))
    except (VoiceError, FileNotFoundError):
        return elevenlabs_error(
            404, "voice_not_found", f"voice {voice_id[:200]!r} not found", "voice_id"
        )


@router.get(
    "/v2/voices", response_model=VoicesSearchResponse, responses=_refusals(401, 422),
    openapi_extra={"parameters": [
        {"name": name, "in": "query", "required": False, "schema": schema}
        for name, schema in SearchQuery.model_json_schema()["properties"].items()
    ]},
)  # fmt: skip
async def search(request: Request, settings: SettingsDep, library: LibraryDep) -> Any:
    """A page of the voices that match (ElevenLabs' ``voices.search``)."""
    if (refusal := _key_refusal(request, settings)) is not None:
        return refusal
    query = request.query_params
    data: dict[str, Any] = {k: v for k, v in query.items() if k in SearchQuery.model_fields}
    if "voice_ids" in query:
        data["voice_ids"] = query.getlist("voice_ids")
    try:
        params = SearchQuery.model_validate(data)
    except ValidationError as error:
        field, message = first_problem(error.errors())
        return elevenlabs_error(422, "invalid_request", message, field and field.split(".")[0])
    return _page(_matching(_listed(library), params), params)


def _matching(listed: list[dict[str, Any]], params: SearchQuery) -> list[dict[str, Any]]:
    tests: list[Callable[[dict[str, Any]], bool]] = []
    if params.search:
        needle = params.search.casefold()
        tests.append(lambda v: needle in v["voice_id"].casefold())
    if params.category:
        tests.append(lambda v: v["category"] == params.category)
    if params.voice_ids is not None:
        wanted = set(params.voice_ids)
        tests.append(lambda v: v["voice_id"] in wanted)
    found = [v for v in listed if all(test(v) for test in tests)]
    key = "voice_id" if params.sort == "name" else "created_at_unix"
    return sorted(
        found, key=lambda v: (v[key], v["voice_id"]), reverse=params.sort_direction == "desc"
    )


def _page(found: list[dict[str, Any]], params: SearchQuery) -> dict[str, Any]:
    """``page_size`` voices from the offset the token names; the token of the next page."""
    start = int(params.next_page_token or 0)
    end = start + params.page_size
    return {
        "voices": found[start:end],
        "has_more": end < len(found),
        "total_count": len(found),
        "next_page_token": str(end) if end < len(found) else None,
    }
