"""Finding a voice's reference clip on the voices volume (the voice library builds on this).

A ``voice_id`` is a file name, as in the specification (``your_voice.wav``), looked up in
``VOICES_DIR`` and then ``PRELOADED_VOICES_DIR``; the id without its extension works too. Ids
that could step outside those directories are refused.
"""

from __future__ import annotations

import re
from pathlib import Path

from worker.settings import Settings

AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".m4a", ".webm", ".pt")
_SAFE_ID = re.compile(r"^[\w][\w .()+-]{0,127}$")


class VoiceNotFound(Exception):
    pass


class InvalidVoiceId(Exception):
    pass


def voice_path(voice_id: str, settings: Settings) -> Path:
    """The clip of ``voice_id``; raise InvalidVoiceId or VoiceNotFound with a client message."""
    if not _SAFE_ID.match(voice_id) or ".." in voice_id:
        raise InvalidVoiceId(
            f"voice_id {voice_id!r} is not a valid voice id (a file name such as 'anna.wav')"
        )
    for directory in (settings.voices_dir, settings.preloaded_voices_dir):
        exact = directory / voice_id
        if exact.is_file():
            return exact.resolve()
        for suffix in AUDIO_SUFFIXES:
            candidate = directory / f"{voice_id}{suffix}"
            if candidate.is_file():
                return candidate.resolve()
    raise VoiceNotFound(f"voice {voice_id!r} not found (no such clip among the stored voices)")
