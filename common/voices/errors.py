"""What can go wrong with a voice, by kind: the master decides what each means to a client."""

from __future__ import annotations

from typing import Literal

VoiceErrorKind = Literal[
    "invalid_id",  # not an id any voice can have (library.check_voice_id)
    "not_found",
    "exists",
    "read_only",  # a preloaded voice
    "not_audio",  # bytes that cannot be decoded as audio
    "too_large",
    "unusable_audio",  # audio, but too short, too long or silent
]


class VoiceError(Exception):
    """A client's mistake about a voice: ``kind`` says which, ``str()`` the reason in words."""

    def __init__(self, kind: VoiceErrorKind, message: str, field: str = "voice_id") -> None:
        super().__init__(message)
        self.kind = kind
        self.field = field
