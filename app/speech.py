"""Starting a synthesis request on the pool: the part HTTP and WebSocket routes share.

Everything that can be refused is refused here, before a response starts: parameters (422),
unknown voice (404), no capacity (503 with Retry-After), and what only the worker can check
(language, text) by waiting for its Started or Failed.
"""

from __future__ import annotations

import asyncio

from common.protocol import Failed, Started
from common.voice_library import VoiceError, VoiceLibrary

from .errors import ApiError
from .pool import PoolUnavailable, WorkerPool
from .request_ids import current_request_id
from .schemas import SpeechRequest
from .streams import RequestStream, StreamFailed

FAILURE_STATUS = {
    "invalid_request": 422,
    "voice_not_found": 404,
    "voice_unreadable": 422,
    "worker_draining": 503,
    "worker_crashed": 503,
    "overloaded": 503,
    "cancelled": 499,
    "internal_error": 500,
}


def failure_to_api_error(failed: Failed) -> ApiError:
    status = FAILURE_STATUS.get(failed.code, 500)
    headers = {"Retry-After": "1"} if status == 503 else None
    field = failed.field or ("voice_id" if failed.code.startswith("voice_") else None)
    return ApiError(status, failed.code, failed.message, field, headers)


async def open_stream(
    request: SpeechRequest, library: VoiceLibrary, request_id: str | None = None
) -> RequestStream:
    """A stream for ``request`` with its voice resolved (404/422 if the voice is unusable).

    Its id is ``request_id``, else the HTTP request's (see request_ids.py).
    """
    clip, digest = None, None
    if request.voice_id is not None:
        try:
            voice = library.find(request.voice_id)
            path, digest = await asyncio.to_thread(library.prepared_clip, voice)
        except VoiceError as error:
            code = "voice_not_found" if error.status == 404 else "voice_unreadable"
            if error.status not in (404, 415):
                code = "invalid_request"
            status = 404 if error.status == 404 else 422
            raise ApiError(status, code, str(error), "voice_id") from None
        clip = str(path)
    return RequestStream(
        text=request.text,
        params=request.params.model_dump(),
        voice_id=request.voice_id,
        voice_path=clip,
        voice_hash=digest,
        request_id=request_id or current_request_id(),
    )


async def start_speech(
    request: SpeechRequest, pool: WorkerPool, library: VoiceLibrary, request_id: str | None = None
) -> tuple[RequestStream, Started]:
    """Submit ``request`` and wait until a worker has accepted it (or raise ApiError)."""
    stream = await open_stream(request, library, request_id)
    try:
        await pool.submit(stream)
    except PoolUnavailable as error:
        headers = {"Retry-After": str(error.retry_after)}
        raise ApiError(503, error.code, str(error), headers=headers) from None
    try:
        return stream, await stream.started()
    except StreamFailed as error:
        pool.release(stream)
        raise failure_to_api_error(error.failed) from None
    except BaseException:
        pool.release(stream)
        raise
