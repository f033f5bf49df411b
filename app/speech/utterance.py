"""Starting a synthesis request on the pool: the part HTTP and WebSocket routes share.

Everything that can be refused is refused here, before a response starts: parameters (422),
unknown voice (404), no capacity (503 with Retry-After), and what only the worker can check
(language, text) by waiting for its Started or Failed.
"""

from __future__ import annotations

import asyncio

from common.protocol import Failed, Started
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary

from .errors import SPEECH_VOICE_CODES, ApiError
from .pool import PoolUnavailable, WorkerPool
from .request_ids import current_request_id
from .schemas import SpeechRequest
from .streams import RequestStream, StreamFailed


def failure_to_api_error(failed: Failed) -> ApiError:
    field = failed.field or ("voice_id" if failed.code.startswith("voice_") else None)
    error = ApiError(failed.code, failed.message, field)
    if error.status == 503:
        error.headers = {"Retry-After": "1"}
    return error


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
            raise ApiError(SPEECH_VOICE_CODES[error.kind], str(error), "voice_id") from None
        clip = str(path)
    return RequestStream(
        text=request.text,
        params=request.params,
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
        raise ApiError(error.code, str(error), headers=headers) from None
    try:
        return stream, await stream.started()
    except StreamFailed as error:
        pool.release(stream)
        raise failure_to_api_error(error.failed) from None
    except BaseException:
        pool.release(stream)
        raise
