"""Starting a synthesis request on the pool: the part HTTP and WebSocket routes share.

Everything that can be refused is refused here, before a response starts: parameters (422),
unknown voice (404), no capacity (503 with Retry-After), and what only the worker can check
(language, text) by waiting for its Started or Failed.
"""

from __future__ import annotations

from worker.messages import Failed, Started
from worker.settings import Settings

from .errors import ApiError
from .pool import PoolUnavailable, WorkerPool
from .schemas import SpeechRequest
from .streams import RequestStream, StreamFailed
from .voices import InvalidVoiceId, VoiceNotFound, voice_path

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


def open_stream(request: SpeechRequest, settings: Settings) -> RequestStream:
    """A stream for ``request`` with its voice resolved (404/422 if the voice is unusable)."""
    path = None
    if request.voice_id is not None:
        try:
            path = str(voice_path(request.voice_id, settings))
        except InvalidVoiceId as error:
            raise ApiError(422, "invalid_request", str(error), "voice_id") from None
        except VoiceNotFound as error:
            raise ApiError(404, "voice_not_found", str(error), "voice_id") from None
    return RequestStream(
        text=request.text,
        params=request.params.model_dump(),
        voice_id=request.voice_id,
        voice_path=path,
    )


async def start_speech(
    request: SpeechRequest, pool: WorkerPool, settings: Settings
) -> tuple[RequestStream, Started]:
    """Submit ``request`` and wait until a worker has accepted it (or raise ApiError)."""
    stream = open_stream(request, settings)
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
