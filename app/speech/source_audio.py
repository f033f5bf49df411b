"""A recording to convert (speech to speech), checked as a voice upload is and decoded the way
upstream's ``ChatterboxVC.generate`` reads it: ``librosa.load(path, sr=16000)`` (channels
averaged, soxr), through :func:`common.audio.decode_audio`. Torch-free; nothing is written.

The limits are the voice uploads' (``MAX_VOICE_UPLOAD_BYTES``, ``MAX_VOICE_SECONDS``), and so
are the refusals: empty or not audio, too long, silent, too little sound
(:mod:`common.voices.clips`).
"""

from __future__ import annotations

import io

import numpy as np

from common.audio import AudioDecodeError, AudioTooLong, decode_audio
from common.protocol import SOURCE_RATE
from common.variants import Variant
from common.voices.clips import DEFAULT_MIN_SOUND_SECONDS, SILENT_DB, level_db, trim_silence
from common.voices.errors import VoiceError

FIELD = "audio"
RAW_PCM = "pcm_s16le_16"  # ElevenLabs' file_format for headerless 16-bit mono 16 kHz PCM


def check_source(data: bytes, max_bytes: int, max_seconds: float, raw: bool = False) -> bytes:
    """The source as the worker takes it (float32 little-endian at 16 kHz), or VoiceError
    naming the ``audio`` field. ``raw``: ``data`` is ElevenLabs' ``pcm_s16le_16``."""
    if len(data) > max_bytes:
        raise VoiceError("too_large", f"the audio is over {max_bytes} bytes", FIELD)
    if not data:
        raise VoiceError("not_audio", "the audio file is empty", FIELD)
    wav = _raw(data, max_seconds) if raw else _decoded(data, max_seconds)
    sound = trim_silence(wav)
    if level_db(wav) < SILENT_DB or level_db(sound) < SILENT_DB:
        raise VoiceError("unusable_audio", "the audio is silent (or nearly)", FIELD)
    if len(sound) / SOURCE_RATE <= DEFAULT_MIN_SOUND_SECONDS:
        raise VoiceError(
            "unusable_audio",
            f"the audio has {len(sound) / SOURCE_RATE:.1f} s of sound; send more than "
            f"{DEFAULT_MIN_SOUND_SECONDS:g} s of speech",
            FIELD,
        )
    return np.asarray(wav, dtype="<f4").tobytes()


def _decoded(data: bytes, max_seconds: float) -> np.ndarray:
    try:
        return decode_audio(io.BytesIO(data), SOURCE_RATE, max_seconds)
    except AudioTooLong:
        raise _too_long(max_seconds) from None
    except AudioDecodeError:
        raise VoiceError(
            "not_audio",
            "the audio cannot be read (send WAV, MP3, FLAC, Ogg/Opus, M4A or WebM)",
            FIELD,
        ) from None


def _raw(data: bytes, max_seconds: float) -> np.ndarray:
    if len(data) % 2:
        raise VoiceError("not_audio", f"{RAW_PCM} audio must be whole 16-bit samples", FIELD)
    if len(data) // 2 > max_seconds * SOURCE_RATE:
        raise _too_long(max_seconds)
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def _too_long(max_seconds: float) -> VoiceError:
    return VoiceError(
        "unusable_audio", f"the audio is over {max_seconds:g} s (MAX_VOICE_SECONDS)", FIELD
    )


def conversion_refusal(variant: str | None) -> str | None:
    """Why the served model cannot convert voices (Turbo and Nano), or None."""
    if variant and Variant(variant).turbo_family:
        return (
            f"{variant} cannot convert voices: voice conversion runs on the English or "
            "multilingual S3Gen (MODEL_VARIANT=chatterbox or chatterbox-multilingual)"
        )
    return None
