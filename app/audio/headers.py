"""The streaming WAV header, and the formats an ``Accept`` header may ask for.

The header goes out before the length is known, so its RIFF and data sizes hold 0xFFFFFFFF.
Chromium's ``<audio>`` and libav (PyAV, ffmpeg) read such a stream to its end; docs/API.md lists
what else was checked.
"""

from __future__ import annotations

import struct

UNKNOWN_SIZE = 0xFFFFFFFF
ACCEPTED_TYPES = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/pcm": "raw_pcm",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/mp4": "fmp4",
    "audio/aac": "aac",
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
    """The format an Accept header prefers (highest q, then first listed; q=0 excludes);
    ``format`` overrides it."""
    choices = []
    for order, part in enumerate(accept.split(",")):
        media_type, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                quality = _quality(param[2:])
        if media_type.lower() in ACCEPTED_TYPES and quality > 0:
            choices.append((-quality, order, ACCEPTED_TYPES[media_type.lower()]))
    return min(choices)[2] if choices else None


def _quality(value: str) -> float:
    """A q value: 0 to 1; anything else (nan, 1e999, words) excludes the type."""
    try:
        quality = float(value)
    except ValueError:
        return 0.0
    return quality if 0.0 <= quality <= 1.0 else 0.0
