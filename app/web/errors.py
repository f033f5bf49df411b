"""One error shape for every endpoint: ``{"error": {"code", "message", "field"?}}``.

Handlers turn every exception into that shape; an unexpected one is logged with its traceback
and answered with a generic 500, so no stack trace ever reaches a client.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from common.validation import first_problem, printable
from common.voices.errors import VoiceError, VoiceErrorKind

from ..speech.errors import SpeechError

log = logging.getLogger(__name__)


# Every error code a client can see, and the HTTP status it comes with: the one table.
STATUS: dict[str, int] = {
    # request validation
    "invalid_request": 422,
    "invalid_body": 400,  # a body the framework cannot parse (e.g. a form without its boundary)
    "invalid_voice_id": 400,
    "unsupported_media_type": 415,
    "too_large": 413,
    # keys
    "unauthorized": 401,
    "forbidden": 403,
    # voices
    "voice_not_found": 404,
    "voice_unreadable": 422,
    "read_only": 403,
    "conflict": 409,
    # capacity and the workers (see common.protocol.ErrorCode)
    "overloaded": 503,
    "not_ready": 503,
    "worker_draining": 503,
    "worker_crashed": 503,
    "cancelled": 499,
    "internal_error": 500,
    # routing
    "not_found": 404,
    "method_not_allowed": 405,
}


# A voice error's code where the voice is the subject (the /voices endpoints; where it is a
# synthesis request's parameter: app/speech/errors.py).
VOICE_CODES: dict[VoiceErrorKind, str] = {
    "invalid_id": "invalid_voice_id",
    "not_found": "voice_not_found",
    "exists": "conflict",
    "read_only": "read_only",
    "not_audio": "unsupported_media_type",
    "too_large": "too_large",
    "unusable_audio": "invalid_request",
}


class ApiError(Exception):
    """An error with its code, client message and (from :data:`STATUS`) HTTP status."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        status: int | None = None,
    ) -> None:
        message, field = printable(message), printable(field) if field else field
        super().__init__(message)
        self.status = status if status is not None else STATUS.get(code, 500)
        self.code = code
        self.message = message
        self.field = field
        self.headers = headers

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


def voice_api_error(error: VoiceError) -> ApiError:
    return ApiError(VOICE_CODES[error.kind], str(error), error.field)


def speech_api_error(error: SpeechError) -> ApiError:
    """The speech core's error over HTTP; a 503 says when to retry (a worker's failure: 1 s)."""
    status = STATUS.get(error.code, 500)
    retry_after = error.retry_after
    if retry_after is None and status == 503:
        retry_after = 1
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    return ApiError(error.code, error.message, error.field, headers, status)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _api_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    return error_response(error)


async def _speech_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SpeechError)
    return error_response(speech_api_error(error))


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    field, message = first_problem(error.errors())
    return error_response(ApiError("invalid_request", message, field))


# The framework's own refusals: routing, bodies it parses, app/body_limit.py.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "invalid_body", 413: "too_large"}


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    code = _HTTP_CODES.get(error.status_code, "http_error")
    field = "body" if error.status_code in (400, 413) else None
    headers = dict(error.headers) if error.headers else None
    return error_response(ApiError(code, str(error.detail), field, headers, error.status_code))


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    message = "internal error; the details are in the server log"
    return error_response(ApiError("internal_error", message))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(SpeechError, _speech_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
