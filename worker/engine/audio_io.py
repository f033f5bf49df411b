"""Read reference clips of any common format (wav, mp3, flac, ogg, m4a ...) as mono float32.

PyAV decodes through FFmpeg's libraries in-process (no ffmpeg binary needed) and soxr resamples;
librosa's loader would need audioread/ffmpeg for m4a.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
import soxr

from .errors import AudioDecodeError


def decode_audio(source: str | Path | BinaryIO, sample_rate: int) -> np.ndarray:
    """Decode the first audio stream of ``source`` to mono float32 at ``sample_rate``."""
    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{_name(source)} has no audio stream")
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            pieces = [
                out.to_ndarray().reshape(-1)
                for frame in container.decode(stream)
                for out in resampler.resample(frame)
            ]
            pieces += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
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


def _name(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "the uploaded clip"
