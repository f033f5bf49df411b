"""Checking an uploaded clip without trusting it, and what is stored of it (common.voices)."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from common.audio import SAMPLE_RATE
from common.variants import Variant
from common.voices import library as library_module
from common.voices.clips import check_upload, wav_bytes
from common.voices.errors import VoiceError
from common.voices.library import VoiceLibrary


def silence_flac(hours: float, rate: int = 8000) -> bytes:
    """Compressed silence: an hour is about 650 KB, 345 MB once decoded at 24 kHz."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="flac") as container:
        stream = container.add_stream("flac", rate=rate, layout="mono")
        block = np.zeros((1, rate * 10), dtype=np.int16)
        for _ in range(int(hours * 360)):
            frame = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
            frame.rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_a_clip_too_long_is_refused_as_soon_as_decoding_passes_the_limit() -> None:
    bomb = silence_flac(hours=1)
    assert len(bomb) < 2_000_000
    tracemalloc.start()
    try:
        with pytest.raises(VoiceError) as refused:
            check_upload(bomb, max_bytes=2_000_000, max_seconds=30, variant=Variant.ENGLISH)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert refused.value.kind == "unusable_audio" and "over 30 s" in str(refused.value)
    assert peak < 50_000_000  # decoded whole, it would be 345 MB


def speech_with_silence_around(level: float) -> np.ndarray:
    """1 s of silence, 6 s of a tone at ``level`` (peak), 0.5 s of silence; mono 24 kHz."""
    t = np.arange(6 * SAMPLE_RATE) / SAMPLE_RATE
    tone = level * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    silence = np.zeros(SAMPLE_RATE)
    return np.concatenate([silence, tone, silence[: SAMPLE_RATE // 2]]).astype(np.float32)


def test_an_upload_is_stored_as_it_is_neither_trimmed_nor_normalised() -> None:
    """Upstream English and multilingual read the reference unchanged (Turbo normalises it
    itself, in the worker): the prepared clip is the decoded upload, silence and level kept."""
    wav = speech_with_silence_around(0.05)
    data = wav_bytes(wav)
    prepared = check_upload(data, 10_000_000, 60, Variant.ENGLISH)
    assert len(prepared) == len(wav)
    assert np.allclose(prepared, wav, atol=1e-4)  # 16-bit rounding only


def test_too_little_sound_is_still_refused_whatever_the_silence_around_it() -> None:
    wav = speech_with_silence_around(0.5)  # 7.5 s long, 6 s of sound
    check_upload(wav_bytes(wav), 10_000_000, 60, Variant.TURBO)
    short = np.concatenate([np.zeros(5 * SAMPLE_RATE), wav[SAMPLE_RATE : 4 * SAMPLE_RATE]])
    with pytest.raises(VoiceError, match=r"3\.0 s of sound; chatterbox-turbo needs more than 5 s"):
        check_upload(wav_bytes(short.astype(np.float32)), 10_000_000, 60, Variant.TURBO)


def test_a_new_way_of_preparing_clips_never_reuses_old_prepared_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = wav_bytes(speech_with_silence_around(0.5))
    library = VoiceLibrary(tmp_path / "voices", tmp_path / "preloaded")
    voice = library.add("anna.wav", data, overwrite=False)
    before = library.content_hash(voice)
    monkeypatch.setattr(library_module, "PREPARATION", "some other preparation")
    assert VoiceLibrary(library.voices_dir, library.preloaded_dir).content_hash(voice) != before
