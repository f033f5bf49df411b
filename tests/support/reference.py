"""Reference clips as users send them (stereo, 8-48 kHz, mp3, flac ...), and upstream's own
``prepare_conditionals`` and ``flow.inference`` as the oracles for what the model is conditioned
on and what mel a window makes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.audio import SAMPLE_RATE, resample
from tests.support.audio_files import write_audio
from worker.engine.model.conditioning import VoiceConditioning
from worker.engine.model.loading import LoadedModel
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.s3gen.runner import WindowInputs

# file name (its suffix names the format): (sample rate, channels, codec or None for the suffix's)
CLIPS: dict[str, tuple[int, int, str | None]] = {
    "stereo-44k.wav": (44100, 2, None),
    "mono-8k.wav": (8000, 1, None),
    "stereo-48k.wav": (48000, 2, None),
    "stereo-44k.mp3": (44100, 2, None),
    "stereo-48k.flac": (48000, 2, None),
    "surround-16k-24bit.wav": (16000, 6, "pcm_s24le"),  # under the suite's 2 MB upload limit
}
LOSSY = {"stereo-44k.mp3"}  # decoded by FFmpeg here, by libsndfile's mpg123 upstream


def reference_file(directory: Path, name: str, seconds: float = 6.5) -> Path:
    """``name`` from CLIPS: channels that differ (another voice, another level), so that how
    they are mixed down shows, with a quiet first second (where 16-bit rounding would show)."""
    rate, channels, codec = CLIPS[name]
    voices = [
        (0.3 + 0.7 * (n % 2)) * resample(reference_clip(seconds, seed=n), SAMPLE_RATE, rate)
        for n in range(channels)
    ]
    pcm = np.stack(voices)
    pcm[:, :rate] *= 0.002
    return write_audio(directory / name, pcm, rate, codec)


def upstream_conditionals(cls: type, model: LoadedModel, path: Path) -> VoiceConditioning:
    """``cls.prepare_conditionals`` (upstream's, unchanged) run on our loaded modules."""
    upstream = object.__new__(cls)  # skips the watermarker, which conditioning never uses
    upstream.t3, upstream.s3gen, upstream.ve = model.t3, model.s3gen, model.voice_encoder
    upstream.device = "cpu"
    upstream.prepare_conditionals(str(path), exaggeration=0.5)
    return VoiceConditioning(upstream.conds.t3, upstream.conds.gen)


def differences(ours: VoiceConditioning, theirs: VoiceConditioning) -> dict[str, float]:
    """The largest absolute difference of each float part; how many prompt tokens differ."""
    pairs = {
        "prompt_feat (S3Gen prompt mel)": (ours.gen["prompt_feat"], theirs.gen["prompt_feat"]),
        "embedding (S3Gen x-vector)": (ours.gen["embedding"], theirs.gen["embedding"]),
        "speaker_emb (T3)": (ours.t3.speaker_emb, theirs.t3.speaker_emb),
    }
    found = {key: _max_abs(a, b) for key, (a, b) in pairs.items()}
    for key, a, b in (
        ("prompt_token (S3Gen)", ours.gen["prompt_token"], theirs.gen["prompt_token"]),
        ("cond_prompt_speech_tokens (T3)", ours.t3.cond_prompt_speech_tokens,
         theirs.t3.cond_prompt_speech_tokens),
    ):  # fmt: skip
        found[key] = float("inf") if a.shape != b.shape else float((a != b).sum())
    return found


def assert_same_conditioning(
    ours: VoiceConditioning, theirs: VoiceConditioning, atol: float = 1e-5
) -> None:
    assert ours.gen.keys() == theirs.gen.keys()
    assert torch.equal(ours.t3.emotion_adv, theirs.t3.emotion_adv)
    found = differences(ours, theirs)
    assert all(found[key] == 0 for key in found if "token" in key), found
    assert all(found[key] <= atol for key in found if "token" not in key), found


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float("inf") if a.shape != b.shape else float((a - b).abs().max())


def upstream_mel(
    model: LoadedModel, voice: VoiceConditioning, inputs: WindowInputs
) -> torch.Tensor:
    """Upstream's ``flow.inference`` of the window's tokens, handed the window's noise (it draws
    its starting noise with ``randn_like``)."""
    gen = voice.gen
    tokens = torch.from_numpy(inputs.tokens)[None]
    noise = torch.from_numpy(inputs.noise)[None]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "randn_like", lambda like, **_: noise.clone().to(like))
        mel, _ = model.s3gen.flow.inference(
            token=tokens, token_len=torch.tensor([tokens.shape[1]]),
            prompt_token=gen["prompt_token"], prompt_token_len=gen["prompt_token_len"],
            prompt_feat=gen["prompt_feat"], prompt_feat_len=None, embedding=gen["embedding"],
            finalize=True, n_timesteps=2 if model.s3gen.meanflow else 10,
            meanflow=model.s3gen.meanflow,
        )  # fmt: skip
    return mel[0]
