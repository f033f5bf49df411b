"""``GET`` and ``POST /tts/generate``: audio streamed to the client as it is generated."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..audio.headers import format_from_accept
from ..speech.requests import InvalidRequest, parse_speech_request
from ..speech.utterance import Utterance
from ..web.audio_response import AudioStreamResponse, abort_on_failure
from ..web.dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..web.errors import ApiError
from ..web.json_body import read_json_object
from ..web.openapi import AUDIO_TYPES, generate_request, synthesis

router = APIRouter(dependencies=[Authorized])


async def _request_data(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        data.update(await read_json_object(request))
    accepted = format_from_accept(request.headers.get("accept", ""))
    if accepted and not data.get("format"):
        data["format"] = accepted
    return data


@router.get(
    "/tts/generate",
    response_class=StreamingResponse,
    responses=synthesis(*AUDIO_TYPES),
    openapi_extra=generate_request("GET"),
)
@router.post(
    "/tts/generate",
    response_class=StreamingResponse,
    responses=synthesis(*AUDIO_TYPES, body=True),
    openapi_extra=generate_request("POST"),
)
async def generate(
    request: Request, settings: SettingsDep, pool: PoolDep, library: LibraryDep
) -> StreamingResponse:
    """Synthesize ``text`` and stream the audio in ``format`` (else Accept, else wav)."""
    try:
        speech = parse_speech_request(await _request_data(request), settings)
    except InvalidRequest as error:
        raise ApiError("invalid_request", str(error), error.field) from None
    utterance = await Utterance.begin(speech, pool, library)
    headers = {
        "X-Request-Id": utterance.request_id,
        "X-Worker-Id": utterance.worker_id,
        "X-Sample-Rate": str(utterance.sample_rate),
        "X-Audio-Channels": "1",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # nginx and similar proxies: do not buffer the stream
    }
    return AudioStreamResponse(
        abort_on_failure(utterance.request_id, utterance.audio()),
        on_close=utterance.release,
        media_type=utterance.media_type,
        headers=headers,
    )
