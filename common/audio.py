"""Audio both processes handle: the model's sample rate, decoding, resampling, 16-bit PCM.

A reference clip is read the way upstream reads it: every ``prepare_conditionals`` calls
``librosa.load(path, sr=24000)``, which decodes at the file's own rate, averages the channels
(``librosa.to_mono``) and resamples with soxr at its "HQ" quality to ``ceil(n * ratio)``
samples, then ``librosa.resample`` the same way to 16 kHz. ``decode_audio`` and ``resample`` do
exactly those steps (docs/VOICE_CLONING.md has the measured differences), with one decoder:
PyAV, which reads through FFmpeg's libraries in-process every common format (wav, mp3, flac, ogg,
m4a ...), where librosa's soundfile reads fewer and falls back to a deprecated loader. For wav
and flac the samples PyAV decodes are the ones soundfile decodes, bit for bit.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import soxr

SAMPLE_RATE = 24000  # every Chatterbox variant speaks at 24 kHz
INT16_SCALE = 32767.0
RESAMPLE_QUALITY = "soxr_hq"  # librosa.resample's default res_type, which upstream uses


class AudioDecodeError(Exception):
    """Bytes or a file that cannot be read as audio; ``str()`` is fit to show a user."""


class AudioTooLong(AudioDecodeError):
    """Decoding stopped where the audio passed the ``max_seconds`` asked for."""


def decode_audio(
    source: str | Path | BinaryIO, sample_rate: int, max_seconds: float | None = None
) -> np.ndarray:
    """The first audio stream of ``source`` as mono float32 at ``sample_rate``, as
    ``librosa.load(source, sr=sample_rate)`` returns it: channels averaged at the file's own
    rate, then resampled.

    ``max_seconds`` stops decoding (AudioTooLong) as soon as the audio is longer: a few MB of
    compressed silence can hold hours of audio, gigabytes once decoded.
    """
    mono, rate = _decode_mono(source, max_seconds)
    return resample(mono, rate, sample_rate)


def resample(wav: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``librosa.resample(wav, orig_sr=from_rate, target_sr=to_rate)`` (its defaults): soxr
    at HQ quality, cut or padded with zeros to ``ceil(len * to_rate / from_rate)`` samples."""
    wav = np.asarray(wav, dtype=np.float32)
    if from_rate == to_rate:
        return wav
    size = math.ceil(wav.shape[-1] * (float(to_rate) / from_rate))  # librosa's float ratio
    out = np.asarray(soxr.resample(wav, from_rate, to_rate, quality=RESAMPLE_QUALITY))
    out = out[:size] if len(out) >= size else np.pad(out, (0, size - len(out)))
    return out.astype(np.float32, copy=False)


def int16_bytes(pcm: np.ndarray) -> bytes:
    """Float PCM in [-1, 1] as signed 16-bit little-endian bytes (values beyond are clipped)."""
    return (np.clip(pcm, -1.0, 1.0) * INT16_SCALE).astype("<i2").tobytes()


def _decode_mono(source: str | Path | BinaryIO, max_seconds: float | None) -> tuple[Any, int]:
    """(mono float32 at the stream's own rate, that rate): each frame's channels averaged."""
    import av  # here, not above: the engine needs this module's constants on machines without it

    pieces: list[np.ndarray] = []
    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError(f"{_name(source)} has no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            most = None if max_seconds is None else int(max_seconds * rate)
            decoded = 0
            for frame in container.decode(stream):
                rate = rate or frame.sample_rate
                pieces.append(_planar_float(frame).mean(axis=0))
                decoded += len(pieces[-1])
                if most is not None and decoded > most:
                    raise AudioTooLong(f"{_name(source)} is longer than {max_seconds:g} s")
    except AudioDecodeError:
        raise
    except (av.FFmpegError, OSError, ValueError) as error:
        raise AudioDecodeError(f"{_name(source)} could not be decoded as audio: {error}") from None
    if not pieces or not rate:
        raise AudioDecodeError(f"{_name(source)} contains no audio samples")
    return np.concatenate(pieces), rate


def _planar_float(frame: Any) -> np.ndarray:
    """A decoded frame as float32 (channels, samples), integers scaled as libsndfile scales
    them (by a power of two, so exactly): 16-bit by 1/32768, 32-bit by 1/2**31, 8-bit around 128."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar:
        data = data.reshape(-1, channels).T
    if data.dtype.kind == "u":  # 8-bit PCM is unsigned
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype.kind == "i":
        return data.astype(np.float32) * np.float32(2.0 ** (1 - 8 * data.dtype.itemsize))
    return data.astype(np.float32, copy=False)


def _name(source: object) -> str:
    return str(source) if isinstance(source, str | Path) else "the uploaded clip"
