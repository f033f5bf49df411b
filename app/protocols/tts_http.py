"""``GET`` and ``POST /tts/generate``: audio streamed to the client as it is generated."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..audio_format import format_from_accept
from ..audio_stream import encoded, encoder_for
from ..dependencies import Authorized, LibraryDep, PoolDep, SettingsDep
from ..encoding import Encoder, output_rate
from ..errors import ApiError
from ..json_body import read_json_object
from ..openapi import AUDIO_TYPES, generate_request, synthesis
from ..schemas import InvalidRequest, parse_speech_request
from ..speech import start_speech
from ..streams import RequestStream, StreamFailed

log = logging.getLogger(__name__)
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
    stream, started = await start_speech(speech, pool, library)
    encoder = encoder_for(speech.format, speech.sample_rate, started.sample_rate)
    headers = {
        "X-Request-Id": stream.request_id,
        "X-Worker-Id": started.worker_id,
        "X-Sample-Rate": str(output_rate(speech.format, speech.sample_rate, started.sample_rate)),
        "X-Audio-Channels": "1",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # nginx and similar proxies: do not buffer the stream
    }
    return AudioStreamResponse(
        _body(stream, encoder),
        on_close=lambda: pool.release(stream),
        media_type=encoder.media_type,
        headers=headers,
    )


class AudioStreamResponse(StreamingResponse):
    """A StreamingResponse that always releases its request, even if the body never started
    (a client gone before the first byte leaves an unstarted generator, whose ``finally`` never
    runs)."""

    def __init__(self, content: AsyncIterator[bytes], on_close: Callable[[], None],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(content, **kwargs)
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.on_close()


async def _body(stream: RequestStream, encoder: Encoder) -> AsyncIterator[bytes]:
    try:
        async for data in encoded(stream, encoder):
            yield data
    except StreamFailed as error:
        # The status line is out: break the connection (no final chunk), so the client sees an
        # incomplete response instead of a short file that looks whole.
        log.error("request %s ended early: %s", stream.request_id, error)
        raise StreamAborted(str(error)) from None


class StreamAborted(Exception):
    """Ends a response that cannot be completed; uvicorn then drops the connection."""
