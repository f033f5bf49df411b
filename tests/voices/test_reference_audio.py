"""Reference clips read as upstream reads them: ``librosa.load`` averages the channels (PyAV's
mono layout summed them at 0.707 each: +3.01 dB on stereo) and resamples with soxr, and what a
voice upload prepares conditions the model exactly as upstream's ``prepare_conditionals`` would
on the same file."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from chatterbox.tts import ChatterboxTTS

from common.audio import SAMPLE_RATE, decode_audio, resample
from common.variants import Variant
from common.voices.clips import check_upload, float_wav_bytes
from common.voices.library import VoiceLibrary
from tests.support.audio_files import write_audio
from tests.support.reference import (
    CLIPS,
    LOSSY,
    assert_same_conditioning,
    reference_file,
    upstream_conditionals,
)
from tests.support.server import Server
from tests.support.voices import speak, upload
from worker.engine.model.conditioning import VoiceConditioning
from worker.engine.model.loading import LoadedModel
from worker.engine.model.random_checkpoint import reference_clip


@pytest.mark.parametrize("name", list(CLIPS))
def test_a_clip_decodes_to_what_librosa_load_returns(tmp_path: Path, name: str) -> None:
    """Bit for bit for PCM and flac (same samples, same mix-down, same resampler and length);
    an mp3 within the rounding of two float decoders (FFmpeg's and mpg123)."""
    path = reference_file(tmp_path, name)
    theirs, _ = librosa.load(path, sr=SAMPLE_RATE)
    ours = decode_audio(path, SAMPLE_RATE)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    if name in LOSSY:
        assert np.abs(ours - theirs).max() < 2e-6
    else:
        assert np.array_equal(ours, theirs)


def test_stereo_is_averaged_not_summed(tmp_path: Path) -> None:
    mono = reference_clip(2.0, 48000, seed=5)
    path = write_audio(tmp_path / "twin.wav", np.stack([mono, mono]), 48000)
    assert np.array_equal(decode_audio(path, 48000), decode_audio(write_audio(
        tmp_path / "mono.wav", mono, 48000), 48000))  # fmt: skip


def test_resampling_is_librosas() -> None:
    """soxr HQ, and librosa's length: ceil(n * ratio), one zero more when the float ratio
    lands a hair above a whole number (44.1 kHz -> 24 kHz)."""
    clip = reference_clip(4.0, 44100, seed=6)
    ours = resample(clip, 44100, SAMPLE_RATE)
    assert np.array_equal(ours, librosa.resample(clip, orig_sr=44100, target_sr=SAMPLE_RATE))
    assert len(ours) == 96001
    down = resample(ours, SAMPLE_RATE, 16000)
    assert np.array_equal(down, librosa.resample(ours, orig_sr=SAMPLE_RATE, target_sr=16000))


def test_the_prepared_clip_keeps_every_sample_as_decoded(tmp_path: Path) -> None:
    """Stored as 32-bit float: what the worker reads back is what was decoded, peaks above full
    scale and the quietest passages included (16-bit rounding moved a quiet log-mel by 1.4)."""
    path = reference_file(tmp_path, "stereo-44k.wav")
    prepared = check_upload(path.read_bytes(), 10_000_000, 60, Variant.ENGLISH)
    prepared[100] = 1.5
    stored = tmp_path / "clip.wav"
    stored.write_bytes(float_wav_bytes(prepared))
    assert np.array_equal(decode_audio(stored, SAMPLE_RATE), prepared)


@pytest.mark.parametrize("name", list(CLIPS))
def test_an_uploaded_clip_conditions_the_model_as_upstream_would(
    server: Server, english_model: LoadedModel, tmp_path: Path, name: str
) -> None:
    """Through the service: upload, speak (the worker computes and stores the conditioning),
    then compare what it stored with upstream's ``prepare_conditionals`` on the uploaded file
    (the server's checkpoint is ``english_model``'s)."""
    path = reference_file(tmp_path, name)
    voice_id = f"reference-{name}"
    assert upload(server, voice_id, path.read_bytes(), overwrite="true").status_code == 201
    assert speak(server, voice_id, tokens=2).status_code == 200
    library = VoiceLibrary(server.voices_dir, server.preloaded_dir)
    clip, _ = library.prepared_clip(library.find(voice_id))
    ours = VoiceConditioning.load(clip.parent / f"{Variant.ENGLISH.value}.pt")
    with torch.inference_mode():
        theirs = upstream_conditionals(ChatterboxTTS, english_model, path)
    # An mp3's samples differ by float rounding between decoders, which the log of a quiet
    # passage's mel magnifies (measured: 5e-4); every other format is equal to the bit.
    assert_same_conditioning(ours, theirs, atol=2e-3 if name in LOSSY else 1e-5)
