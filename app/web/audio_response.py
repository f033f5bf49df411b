"""Streamed audio as an HTTP response: the pool slot released however it ends, a failure
after the status line breaking the connection instead of ending a short file that looks whole.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..speech.errors import SpeechError

log = logging.getLogger(__name__)


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
        except StreamAborted:
            pass  # logged where it arose: returned unfinished, uvicorn drops the connection
        finally:
            self.on_close()


class StreamAborted(Exception):
    """Ends a response that cannot be completed. It stops at :class:`AudioStreamResponse`, which
    returns with the body unfinished, so uvicorn drops the connection: an expected event (a worker
    died), logged in one line, never as a traceback (the app's error handler and uvicorn would
    each log one for an exception that reached them)."""


async def abort_on_failure(request_id: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks``, with a worker's failure turned into :class:`StreamAborted`: the status line is
    out, so the client must see an incomplete response rather than a short file."""
    try:
        async for data in chunks:
            yield data
    except SpeechError as error:
        log.error("request %s ended early, its connection dropped: %s", request_id, error)
        raise StreamAborted(str(error)) from None
