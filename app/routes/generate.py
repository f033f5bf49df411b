"""``GET`` and ``POST /tts/generate``: audio streamed to the client as it is generated."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ..audio_format import format_info
from ..dependencies import Authorized, PoolDep, SettingsDep
from ..errors import ApiError
from ..pool import WorkerPool
from ..schemas import InvalidRequest, parse_speech_request
from ..speech import start_speech
from ..streams import RequestStream, StreamFailed

log = logging.getLogger(__name__)
router = APIRouter(dependencies=[Authorized])


async def _request_data(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = dict(request.query_params)
    if request.method == "POST":
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(422, "invalid_request", "the body must be a JSON object") from None
        if not isinstance(body, dict):
            raise ApiError(422, "invalid_request", "the body must be a JSON object")
        data.update(body)
    return data


@router.api_route("/tts/generate", methods=["GET", "POST"], response_class=StreamingResponse)
async def generate(request: Request, settings: SettingsDep, pool: PoolDep) -> StreamingResponse:
    """Synthesize ``text`` and stream the audio (``format``: wav or raw_pcm)."""
    try:
        speech = parse_speech_request(await _request_data(request), settings)
    except InvalidRequest as error:
        raise ApiError(422, "invalid_request", str(error), error.field) from None
    stream, started = await start_speech(speech, pool, settings)
    info = format_info(speech.format, started.sample_rate)
    headers = {
        "X-Request-Id": stream.request_id,
        "X-Worker-Id": started.worker_id,
        "X-Sample-Rate": str(started.sample_rate),
        "X-Audio-Channels": "1",
        "X-Sample-Format": "s16le",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # nginx and similar proxies: do not buffer the stream
    }
    return StreamingResponse(
        _body(stream, pool, info.header), media_type=info.media_type, headers=headers
    )


async def _body(stream: RequestStream, pool: WorkerPool, header: bytes) -> AsyncIterator[bytes]:
    try:
        if header:
            yield header
        async for pcm in stream.audio():
            yield pcm
    except StreamFailed as error:
        # The status line is sent: all that is left is to end the stream early and say why.
        log.error("request %s ended early: %s", stream.request_id, error)
    finally:
        pool.release(stream)
