"""Reference clips: checking an upload, and preparing the clip a voice is cloned from.

The prepared clip is the upload decoded to mono at the model's rate and nothing else, because
that is what upstream's ``prepare_conditionals`` reads: ``librosa.load`` (channels averaged,
resampled; common.audio does the same), and then English and multilingual use the reference as
it is (no trimming, no loudness change), and Turbo normalises its loudness itself, which the
worker does for the Turbo family when it computes the conditioning
(worker/engine/model/conditioning.py). It is stored as 32-bit float, so the worker reads back
the very samples upstream would compute: rounded to 16 bits, a quiet passage's log-mel moved by
up to 1.4 and prompt tokens changed (docs/VOICE_CLONING.md). Silence is measured only to refuse
clips with too little sound.
"""

from __future__ import annotations

import io
import struct
import wave
from pathlib import Path

import av
import numpy as np

from ..audio import SAMPLE_RATE, AudioDecodeError, AudioTooLong, decode_audio, int16_bytes
from ..variants import TURBO_MIN_REFERENCE_SECONDS, Variant
from .errors import VoiceError

# Part of every prepared entry's key (common.voices.library): change it whenever what is done to
# a clip changes, so that no clip or conditioning prepared the old way is reused.
PREPARATION = "v3: as librosa.load reads it (channels averaged), mono 24 kHz float32"
SILENCE_DB = -40.0  # trim what is this far below the clip's loudest 20 ms
SILENT_DB = -50.0  # a clip (or its sound) quieter than this is refused as silent
MIN_SOUND_SECONDS = {v: TURBO_MIN_REFERENCE_SECONDS for v in Variant if v.turbo_family}
DEFAULT_MIN_SOUND_SECONDS = 1.0


def check_upload(data: bytes, max_bytes: int, max_seconds: float, variant: Variant) -> np.ndarray:
    """The prepared clip of an uploaded file (decoded, as it is), or VoiceError saying what is
    wrong with it: too large, not audio, too long, silent, or too little sound for ``variant``
    (the sound lies between the first and the last frame within SILENCE_DB of the loudest)."""
    if len(data) > max_bytes:
        raise VoiceError("too_large", f"the file is over {max_bytes} bytes", "file")
    if not data:
        raise VoiceError("not_audio", "the file is empty", "file")
    wav = decode(data, max_seconds)
    speech = trim_silence(wav)
    if level_db(wav) < SILENT_DB or level_db(speech) < SILENT_DB:
        message = "the clip is silent (or nearly): record someone speaking"
        raise VoiceError("unusable_audio", message, "file")
    shortest = MIN_SOUND_SECONDS.get(variant, DEFAULT_MIN_SOUND_SECONDS)
    if len(speech) / SAMPLE_RATE <= shortest:
        raise VoiceError(
            "unusable_audio",
            f"the clip has {len(speech) / SAMPLE_RATE:.1f} s of sound; {variant.value} needs "
            f"more than {shortest:g} s",
            "file",
        )
    return wav


def decode(data: bytes, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 at the model's rate; VoiceError(not_audio) if the bytes are not audio, and
    (unusable_audio) if they are more than ``max_seconds`` of it."""
    try:
        return decode_audio(io.BytesIO(data), SAMPLE_RATE, max_seconds)
    except AudioTooLong:
        raise VoiceError(
            "unusable_audio",
            f"the clip is over {max_seconds:g} s (MAX_VOICE_SECONDS); 10-20 s of clean speech "
            "is ideal",
            "file",
        ) from None
    except AudioDecodeError:
        raise VoiceError(
            "not_audio",
            "the file is not audio that can be read (send WAV, MP3, FLAC, Ogg/Opus, M4A or WebM)",
            "file",
        ) from None


def sniff_suffix(data: bytes) -> str:
    """The file suffix for the container ``data`` is in (for uploads named without one)."""
    try:
        with av.open(io.BytesIO(data)) as container:
            names = container.format.name.split(",")
    except (av.FFmpegError, ValueError):
        return ".wav"
    for name, suffix in (("wav", ".wav"), ("mp3", ".mp3"), ("flac", ".flac"), ("ogg", ".ogg"),
                         ("mp4", ".m4a"), ("m4a", ".m4a"), ("webm", ".webm"),
                         ("matroska", ".webm")):  # fmt: skip
        if name in names:
            return suffix
    return ".wav"


def trim_silence(wav: np.ndarray) -> np.ndarray:
    """``wav`` without its leading and trailing silence (kept: two 20 ms frames before the sound,
    three after). Used to measure the sound, never applied to the stored clip."""
    frame = SAMPLE_RATE // 50
    frames = len(wav) // frame
    if frames < 2:
        return wav
    energy = np.sqrt(np.mean(np.square(wav[: frames * frame].reshape(frames, frame)), axis=1))
    loud = np.flatnonzero(energy > energy.max() * 10 ** (SILENCE_DB / 20))
    if not len(loud):
        return wav[:0]  # digital silence
    start, stop = max(0, loud[0] - 2) * frame, min(frames, loud[-1] + 3) * frame
    return wav[start:stop]


def level_db(wav: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    return 20 * np.log10(rms) if rms > 0 else -np.inf


def float_wav_bytes(wav: np.ndarray) -> bytes:
    """Mono 32-bit float WAV (WAVE_FORMAT_IEEE_FLOAT, with its ``fact`` chunk) at the model's
    rate: the prepared clip, kept exactly as decoded (peaks above full scale included)."""
    data = np.asarray(wav, dtype="<f4").tobytes()
    fmt = struct.pack("<HHIIHHH", 3, 1, SAMPLE_RATE, 4 * SAMPLE_RATE, 4, 32, 0)
    chunks = ((b"fmt ", fmt), (b"fact", struct.pack("<I", len(data) // 4)), (b"data", data))
    body = b"WAVE" + b"".join(tag + struct.pack("<I", len(chunk)) + chunk for tag, chunk in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def clip_seconds(path: str | Path) -> float:
    """The length of a prepared clip (``wave`` cannot read float WAV)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        if stream.duration is None or stream.time_base is None:
            return 0.0
        return float(stream.duration * stream.time_base)


def wav_bytes(wav: np.ndarray) -> bytes:
    """Mono 16-bit WAV at the model's rate (what scripts/prepare_voice.py writes for upload)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(int16_bytes(wav))
    return buffer.getvalue()
