"""How the speech core refuses or fails a synthesis, in its own terms: a :class:`SpeechError`,
which each protocol's adapter words in its own shape (HTTP's through ``app/web/errors.py``).
"""

from __future__ import annotations

from typing import Literal

from common.protocol import ErrorCode, Failed
from common.voices.errors import VoiceErrorKind

# A worker's codes, the pool's refusals, and a voice's problems as a request's parameter.
SpeechErrorCode = Literal[ErrorCode, "not_ready", "conflict", "read_only", "too_large"]

# A voice error's code where the voice is one parameter of a synthesis request: like any other
# parameter, a bad id is invalid_request (not the /voices endpoints' invalid_voice_id), and a
# stored file that is not audio is that parameter's problem, not the request body's media type.
VOICE_CODES: dict[VoiceErrorKind, SpeechErrorCode] = {
    "invalid_id": "invalid_request",
    "not_found": "voice_not_found",
    "exists": "conflict",
    "read_only": "read_only",
    "not_audio": "voice_unreadable",
    "too_large": "too_large",
    "unusable_audio": "invalid_request",
}


class SpeechError(Exception):
    """``code`` says what went wrong, ``str()`` and ``message`` say it in words fit for a client,
    ``field`` names the parameter at fault, ``retry_after`` (seconds) when to try again if the
    core knows (the pool's refusals)."""

    def __init__(
        self,
        code: SpeechErrorCode,
        message: str,
        field: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code: SpeechErrorCode = code
        self.message = message
        self.field = field
        self.retry_after = retry_after


def worker_failure(failed: Failed) -> SpeechError:
    """A worker's ``Failed``; a voice's problem names ``voice_id``."""
    field = failed.field or ("voice_id" if failed.code.startswith("voice_") else None)
    return SpeechError(failed.code, failed.message, field)
