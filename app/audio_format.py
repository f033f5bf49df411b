"""Turning the workers' PCM (signed 16-bit little-endian mono) into the requested format.

``wav`` is a streaming WAV: the header goes out before the length is known, so its size fields
hold 0xFFFFFFFF, which browsers and ffmpeg read as "until the end of the stream". ``raw_pcm`` is
the bare samples. Compressed formats arrive with the encoding issue (PyAV).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

UNKNOWN_SIZE = 0xFFFFFFFF


@dataclass(frozen=True)
class FormatInfo:
    media_type: str
    header: bytes


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


def format_info(audio_format: str, sample_rate: int) -> FormatInfo:
    if audio_format == "wav":
        return FormatInfo("audio/wav", wav_header(sample_rate))
    if audio_format == "raw_pcm":
        return FormatInfo("audio/pcm", b"")
    raise ValueError(f"unsupported format {audio_format!r}")
