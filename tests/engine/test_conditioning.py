"""Voice conditioning from reference clips of every supported format, saved and reloaded, and
equal to what upstream's own ``prepare_conditionals`` computes from the same file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from chatterbox.mtl_tts import ChatterboxMultilingualTTS
from chatterbox.tts import ChatterboxTTS
from chatterbox.tts_turbo import ChatterboxTurboTTS

from common.audio import AudioDecodeError, decode_audio
from common.variants import Variant
from common.voices.clips import check_upload, float_wav_bytes
from tests.support.audio_files import write_audio
from tests.support.checkpoints import Checkpoints
from tests.support.engine import synthesize
from tests.support.reference import (
    LOSSY,
    assert_same_conditioning,
    reference_file,
    upstream_conditionals,
)
from worker.engine.errors import InvalidRequestError
from worker.engine.model.conditioning import VoiceConditioning, compute_conditioning, load_reference
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.pipeline import StreamingEngine


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return reference_clip(6.0, 24000, seed=3)


@pytest.mark.parametrize("suffix", [".wav", ".mp3", ".flac", ".ogg", ".m4a"])
def test_every_reference_format_decodes(tmp_path: Path, clip: np.ndarray, suffix: str) -> None:
    path = write_audio(tmp_path / f"voice{suffix}", clip, 24000)
    decoded = load_reference(path)
    assert abs(len(decoded) - len(clip)) < 0.1 * 24000  # codec padding stays under 100 ms
    assert np.sqrt(np.mean(decoded**2)) > 0.5 * np.sqrt(np.mean(clip**2))


def test_conditioning_saved_and_loaded_is_identical(
    english_model: LoadedModel, clip: np.ndarray, tmp_path: Path
) -> None:
    voice = compute_conditioning(english_model, clip, 24000, exaggeration=0.7)
    voice.save(tmp_path / "voice.pt")
    loaded = VoiceConditioning.load(tmp_path / "voice.pt")
    for key, value in voice.t3.__dict__.items():
        other = getattr(loaded.t3, key)
        assert (value is None and other is None) or torch.equal(value, other), key
    assert voice.gen.keys() == loaded.gen.keys()
    for key, value in voice.gen.items():
        assert value is None or torch.equal(value, loaded.gen[key]), key
    assert not list(tmp_path.glob("voice.pt.*")), "no temporary file is left behind"


def test_conditioning_has_what_the_model_needs(
    english_model: LoadedModel, clip: np.ndarray
) -> None:
    voice = compute_conditioning(english_model, clip, 24000)
    assert voice.t3.speaker_emb.shape == (1, 256)
    assert voice.t3.cond_prompt_speech_tokens.shape == (1, 150)
    assert voice.gen["prompt_feat"].shape[1] == 2 * voice.gen["prompt_token"].shape[1]
    assert voice.gen["embedding"].shape == (1, 192)


def test_same_clip_same_conditioning(english_model: LoadedModel, clip: np.ndarray) -> None:
    a = compute_conditioning(english_model, clip, 24000)
    b = compute_conditioning(english_model, clip, 24000)
    assert torch.equal(a.gen["prompt_token"], b.gen["prompt_token"])
    assert torch.allclose(a.t3.speaker_emb, b.t3.speaker_emb)


async def test_a_cloned_voice_speaks(
    engine: StreamingEngine, english_model: LoadedModel, clip: np.ndarray
) -> None:
    voice = compute_conditioning(english_model, clip, 24000)
    pcm, _, stats = await synthesize(engine, "Speaking with a new voice.", voice, seed=1)
    builtin, _, _ = await synthesize(engine, "Speaking with a new voice.", None, seed=1)
    assert stats.speech_tokens > 0 and len(pcm) > 0
    assert len(pcm) != len(builtin) or not np.allclose(pcm, builtin)


def test_a_clip_that_is_not_audio_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio at all")
    with pytest.raises(AudioDecodeError):
        decode_audio(path, 24000)


def test_a_too_short_clip_is_refused(english_model: LoadedModel) -> None:
    with pytest.raises(InvalidRequestError):
        compute_conditioning(english_model, np.zeros(2400, dtype=np.float32), 24000)


def test_english_conditioning_equals_upstreams_from_the_clip_as_it_is(
    english_model: LoadedModel, clip: np.ndarray, tmp_path: Path
) -> None:
    """A quiet clip with silence around it: upstream neither trims nor normalises it."""
    quiet = np.concatenate([np.zeros(12000), 0.05 * clip, np.zeros(6000)]).astype(np.float32)
    path = write_audio(tmp_path / "quiet.wav", quiet, 24000)
    ours = compute_conditioning(english_model, load_reference(path), 24000)
    assert_same_conditioning(ours, upstream_conditionals(ChatterboxTTS, english_model, path))


def test_turbo_conditioning_equals_upstreams_loudness_normalised(
    turbo_model: LoadedModel, tmp_path: Path
) -> None:
    quiet = 0.05 * reference_clip(7.0, 24000, seed=4)
    path = write_audio(tmp_path / "quiet.wav", quiet, 24000)
    ours = compute_conditioning(turbo_model, load_reference(path), 24000)
    assert_same_conditioning(ours, upstream_conditionals(ChatterboxTurboTTS, turbo_model, path))
    with torch.inference_mode():  # the mel of the clip as it is: normalising made a difference
        as_it_is = turbo_model.s3gen.embed_ref(load_reference(path), 24000, device="cpu")
    assert not torch.allclose(as_it_is["prompt_feat"], ours.gen["prompt_feat"], atol=1e-2)


@pytest.mark.parametrize("name", ["stereo-44k.wav", "stereo-44k.mp3"])
@pytest.mark.parametrize(
    ("variant", "upstream"),
    [(Variant.TURBO, ChatterboxTurboTTS), (Variant.MULTILINGUAL, ChatterboxMultilingualTTS)],
    ids=["turbo", "multilingual"],
)
def test_a_prepared_stereo_upload_conditions_every_family_as_upstream(
    checkpoints: Checkpoints, tmp_path: Path, variant: Variant, upstream: type, name: str
) -> None:
    """The service's path for a voice (tests/voices/test_reference_audio.py runs it through
    the server for English): the upload checked and prepared, stored, read back by the worker
    and conditioned; upstream reads the uploaded file itself."""
    model = load_model(checkpoints(variant), device="cpu")
    path = reference_file(tmp_path, name)
    stored = tmp_path / "clip.wav"
    stored.write_bytes(float_wav_bytes(check_upload(path.read_bytes(), 10**8, 60, variant)))
    ours = compute_conditioning(model, load_reference(stored), 24000)
    theirs = upstream_conditionals(upstream, model, path)
    assert_same_conditioning(ours, theirs, atol=2e-3 if name in LOSSY else 1e-5)
