"""The streaming WAV header, and the formats an ``Accept`` header may ask for.

The header goes out before the length is known, so its RIFF and data sizes hold 0xFFFFFFFF.
Decoders that read such a file to its end: Chromium's and Firefox's ``<audio>``, ffmpeg/libav
(PyAV), libsndfile (soundfile) and SoX; Python's ``wave`` module trusts the size, so it reads to
the end too (docs/API.md lists them).
"""

from __future__ import annotations

import struct

UNKNOWN_SIZE = 0xFFFFFFFF
ACCEPTED_TYPES = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/pcm": "raw_pcm",
    "audio/l16": "raw_pcm",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "fmp4",
    "audio/aac": "fmp4",
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/opus": "ogg",
    "audio/flac": "flac",
    "audio/basic": "mulaw",
    "audio/x-mulaw": "mulaw",
}


def wav_header(sample_rate: int, channels: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return (
        b"RIFF"
        + struct.pack("<I", UNKNOWN_SIZE)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, bits)
        + b"data"
        + struct.pack("<I", UNKNOWN_SIZE)
    )


def format_from_accept(accept: str) -> str | None:
    """The first format an Accept header names (in its order); ``format`` overrides it."""
    for part in accept.split(","):
        media_type = part.split(";")[0].strip().lower()
        if media_type in ACCEPTED_TYPES:
            return ACCEPTED_TYPES[media_type]
    return None
