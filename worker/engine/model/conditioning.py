"""Voice conditioning: what the model needs from a reference clip, computed once and stored.

A voice is three things, all derived from one clip: T3's conditioning (voice-encoder speaker
embedding + up to 150 prompt speech tokens, 375 for Turbo), S3Gen's reference (prompt tokens, prompt
mel, CAMPPlus x-vector) and the exaggeration default. The on-disk format is upstream's ``conds.pt``
(``Conditionals.save``), so a built-in voice and a cloned one load the same way.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from chatterbox.models.t3.modules.cond_enc import T3Cond

from common.audio import SAMPLE_RATE, decode_audio, resample
from common.variants import REFERENCE_WINDOW_SECONDS, TURBO_MIN_REFERENCE_SECONDS

from ..errors import InvalidRequestError

if TYPE_CHECKING:
    from .loading import LoadedModel

S3_SR = 16000


@dataclass
class VoiceConditioning:
    """T3 and S3Gen conditioning of one voice; shared across requests, never mutated."""

    t3: T3Cond
    gen: dict[str, Any]

    def to(self, device: torch.device) -> VoiceConditioning:
        t3 = T3Cond(**{k: _to(v, device) for k, v in self.t3.__dict__.items()})
        return VoiceConditioning(t3, {k: _to(v, device) for k, v in self.gen.items()})

    def save(self, path: str | Path) -> None:
        """Write atomically (temporary file, fsync, rename) in upstream's ``conds.pt`` format."""
        path = Path(path)
        payload = {"t3": dict(self.t3.__dict__), "gen": dict(self.gen)}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> VoiceConditioning:
        data = torch.load(path, map_location="cpu", weights_only=True)
        return cls(T3Cond(**data["t3"]), dict(data["gen"])).to(torch.device(device))

    def t3_cond_for(self, exaggeration: float, dtype: torch.dtype) -> T3Cond:
        """A fresh ``T3Cond`` for one request (T3 caches embeddings on the object it is given)."""
        base = self.t3
        return T3Cond(
            speaker_emb=base.speaker_emb.to(dtype),
            cond_prompt_speech_tokens=base.cond_prompt_speech_tokens,
            emotion_adv=torch.full(
                (1, 1, 1), float(exaggeration), device=base.speaker_emb.device
            ).to(dtype),
        )


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if torch.is_tensor(value) else value


def load_reference(path: str | Path) -> np.ndarray:
    """A reference clip as upstream's ``librosa.load(path, sr=24000)`` reads it: channels
    averaged, resampled with soxr (common.audio). A prepared clip (32-bit float at 24 kHz)
    comes back exactly as it was prepared."""
    return decode_audio(path, SAMPLE_RATE)


@torch.inference_mode()
def compute_conditioning(
    model: LoadedModel, wav: np.ndarray, sample_rate: int, exaggeration: float = 0.5
) -> VoiceConditioning:
    """Compute a voice's conditioning from a mono clip, as upstream ``prepare_conditionals``:
    the Turbo family first normalises the clip to -27 LUFS (upstream ``norm_loudness``, on by
    default), English and multilingual use it as it is. The stored clip is the upload decoded
    and nothing else (common.voices.clips), so this is the only processing a voice gets; the
    16 kHz copy is ``librosa.resample``'s, as upstream's (common.audio.resample)."""
    wav24 = resample(np.asarray(wav, dtype=np.float32), sample_rate, SAMPLE_RATE)
    seconds = wav24.size / SAMPLE_RATE
    if model.variant.turbo_family:
        if seconds <= TURBO_MIN_REFERENCE_SECONDS:
            raise InvalidRequestError(
                "voice",
                f"chatterbox-turbo needs a reference longer than {TURBO_MIN_REFERENCE_SECONDS:g} s "
                f"(got {seconds:.1f} s)",
            )
        wav24 = _normalize_loudness(wav24, SAMPLE_RATE)
    if seconds < 0.5:
        raise InvalidRequestError("voice", f"the reference clip is too short ({seconds:.2f} s)")
    wav16 = resample(wav24, SAMPLE_RATE, S3_SR)
    device = model.device
    gen = model.s3gen.embed_ref(
        wav24[: REFERENCE_WINDOW_SECONDS * SAMPLE_RATE], SAMPLE_RATE, device=device
    )
    gen = {k: (v.detach() if torch.is_tensor(v) else v) for k, v in gen.items()}
    prompt_tokens = None
    if plen := model.t3.hp.speech_cond_prompt_len:
        prompt_seconds = 15 if model.variant.turbo_family else 6
        tokens, _ = model.s3gen.tokenizer.forward([wav16[: prompt_seconds * S3_SR]], max_len=plen)
        prompt_tokens = torch.atleast_2d(tokens).to(device)
    embeds = model.voice_encoder.embeds_from_wavs([wav16], sample_rate=S3_SR)
    speaker = torch.from_numpy(embeds).mean(dim=0, keepdim=True).to(device)
    t3 = T3Cond(
        speaker_emb=speaker,
        cond_prompt_speech_tokens=prompt_tokens,
        emotion_adv=exaggeration * torch.ones(1, 1, 1, device=device),
    )
    return VoiceConditioning(t3, gen)


def _normalize_loudness(
    wav: np.ndarray, sample_rate: int, target_lufs: float = -27.0
) -> np.ndarray:
    """Turbo's reference loudness normalisation (upstream ``norm_loudness``)."""
    import pyloudnorm

    loudness = pyloudnorm.Meter(sample_rate).integrated_loudness(wav)
    gain = 10.0 ** ((target_lufs - loudness) / 20.0)
    if math.isfinite(gain) and gain > 0.0:
        return (wav * gain).astype(np.float32)
    return wav
