"""Audio both processes handle: the model's sample rate, decoding, resampling, 16-bit PCM.

PyAV decodes through FFmpeg's libraries in-process (no ffmpeg binary needed) and reads every
common format (wav, mp3, flac, ogg, m4a ...); librosa's loader would need audioread/ffmpeg for
m4a. soxr resamples.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soxr

SAMPLE_RATE = 24000  # every Chatterbox variant speaks at 24 kHz
INT16_SCALE = 32767.0


class AudioDecodeError(Exception):
    """Bytes or a file that cannot be read as audio; ``str()`` is fit to show a user."""


class AudioTooLong(AudioDecodeError):
    """Decoding stopped where the audio passed the ``max_seconds`` asked for."""


def decode_audio(
    source: str | Path | BinaryIO, sample_rate: int, max_seconds: float | None = None
) -> np.ndarray:
    """Decode the first audio stream of ``source`` to mono float32 at ``sample_rate``.

    ``max_seconds`` stops decoding (AudioTooLong) as soon as the audio is longer: a few MB of
    compressed silence can hold hours of audio, gigabytes once decoded.
    """
    import av  # here, not above: the engine needs this module's constants on machines without it

    most = None if max_seconds is None else int(max_seconds * sample_rate)
    pieces: list[np.ndarray] = []
    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{_name(source)} has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            decoded = 0
            for frame in itertools.chain(container.decode(stream), [None]):  # None: flush
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
                    decoded += len(pieces[-1])
                if most is not None and decoded > most:
                    raise AudioTooLong(f"{_name(source)} is longer than {max_seconds:g} s")
    except AudioDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise AudioDecodeError(f"{_name(source)} could not be decoded as audio: {error}") from None
    if not pieces:
        raise AudioDecodeError(f"{_name(source)} contains no audio samples")
    return np.concatenate(pieces).astype(np.float32, copy=False)


def resample(wav: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate:
        return wav.astype(np.float32, copy=False)
    return np.asarray(soxr.resample(wav, from_rate, to_rate), dtype=np.float32)


def int16_bytes(pcm: np.ndarray) -> bytes:
    """Float PCM in [-1, 1] as signed 16-bit little-endian bytes (values beyond are clipped)."""
    return (np.clip(pcm, -1.0, 1.0) * INT16_SCALE).astype("<i2").tobytes()


def _name(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "the uploaded clip"
