"""Request bodies within bounds: 413 as soon as a body passes its limit, never buffered whole.

``MAX_REQUEST_BYTES`` bounds every body (the JSON requests); an upload to ``POST /voices`` (or
a recording to convert) may have ``MAX_VOICE_UPLOAD_BYTES`` plus room for the form's other
fields. The check sits in ``receive``: a body the route never reads costs nothing, and one it
reads is refused as soon as its declared length, or the bytes received so far, pass the limit,
before a large upload is spooled to disk. Starlette's own ``max_body_size`` answers a refused
body that the route did not read in plain text, outside the error shape, and cannot say which
setting applies: hence this.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.settings import Settings

FORM_ROOM = 64 * 1024  # an upload's multipart boundaries, headers and small fields
UPLOAD_PREFIXES = ("/vc/convert", "/v1/speech-to-speech/", "/v1/voice-changer/")


class BodyTooLarge(HTTPException):
    """An HTTPException, so that FastAPI's form parsing passes it on rather than making it a 400;
    the error handlers answer it as ``too_large``."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class BodyLimit:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def limit(self, scope: Scope) -> tuple[int, str]:
        """(the most bytes this request's body may have, the message past it)."""
        if scope["method"] == "POST" and _is_upload(scope["path"]):
            files = self.settings.max_voice_upload_bytes
            return files + FORM_ROOM, f"the upload is over {files} bytes (MAX_VOICE_UPLOAD_BYTES)"
        limit = self.settings.max_request_bytes
        return limit, f"the request body is over {limit} bytes (MAX_REQUEST_BYTES)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, message = self.limit(scope)
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise BodyTooLarge(message)
            event = await receive()
            received += len(event.get("body", b""))
            if received > limit:
                raise BodyTooLarge(message)
            return event

        await self.app(scope, limited, send)


def _is_upload(path: str) -> bool:
    """A voice upload, or a recording to convert (app/protocols/speech_to_speech.py)."""
    return path == "/voices" or path.startswith(UPLOAD_PREFIXES)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 19 else None
