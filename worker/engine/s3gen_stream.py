"""Incremental S3Gen decoding: speech tokens in, seamless 24 kHz PCM out, at bounded cost.

Upstream has no streaming path (``flow.inference(finalize=False)`` crashes) and re-decoding the
whole prefix per slice is quadratic. Each :meth:`S3GenStream.push` here decodes one *window*:
the voice prompt, a bounded left context of already emitted tokens, and the new tokens.

- Noise is fixed per absolute mel frame and vocoder sample (:class:`PositionalNoise`), so
  overlapping windows see the same noise where they overlap, and a seed reproduces the audio.
- The last ``pre_lookahead_len`` tokens wait for their right context unless the stream is final
  (what upstream's ``finalize=False`` intends).
- The vocoder's sine source keeps its phase continuous across windows (:class:`SineSource`).
- Each window's audio replaces the held-back tail of the previous one with a crossfade.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from chatterbox.models.s3gen.hifigan import HiFTGenerator

from common.audio import SAMPLE_RATE
from common.params import OverlapMethod
from common.variants import Variant

from .conditioning import VoiceConditioning
from .loading import LoadedModel

MEL_PER_TOKEN = 2
SAMPLES_PER_MEL = 480
SAMPLES_PER_TOKEN = MEL_PER_TOKEN * SAMPLES_PER_MEL
CONTEXT_TOKENS = 12  # left context re-decoded with each window ("full" overlap): 480 ms
EDGE_SAMPLES = (
    2 * SAMPLES_PER_MEL
)  # right-edge vocoder samples never emitted before the next window
SILENCE_TOKEN = 4299  # upstream Turbo ends every utterance with three of these


@dataclass(frozen=True)
class StreamConfig:
    overlap: OverlapMethod = "full"
    crossfade_ms: int = 30
    leading_trim_ms: int = 0
    trailing_trim_ms: int = 0
    seed: int = 0

    @property
    def context_tokens(self) -> int:
        return CONTEXT_TOKENS if self.overlap == "full" else 0

    @property
    def crossfade(self) -> int:
        return SAMPLE_RATE * self.crossfade_ms // 1000


class PositionalNoise:
    """Gaussian noise indexed by absolute position: the same positions always get the same noise.

    Used per mel frame for the flow's starting noise and per sample for the vocoder's source,
    so that overlapping windows see identical noise where they overlap.
    """

    def __init__(
        self, seed: int, channels: int, block: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.seed, self.channels, self.BLOCK = seed, channels, block
        self.device, self.dtype = device, dtype
        self.blocks: dict[int, torch.Tensor] = {}

    def _block(self, index: int) -> torch.Tensor:
        if index not in self.blocks:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % 2**63)
            block = torch.randn(1, self.channels, self.BLOCK, generator=gen)
            self.blocks[index] = block.to(self.device, self.dtype)
        return self.blocks[index]

    def frames(self, start: int, stop: int) -> torch.Tensor:
        """Noise (1, channels, stop - start) for positions [start, stop); negative ones are
        the voice prompt's."""
        first, last = start // self.BLOCK, (stop - 1) // self.BLOCK
        joined = torch.cat([self._block(i) for i in range(first, last + 1)], dim=2)
        offset = start - first * self.BLOCK
        return joined[:, :, offset : offset + stop - start]

    def forget_before(self, frame: int) -> None:
        for index in [i for i in self.blocks if 0 <= i < frame // self.BLOCK - 1]:
            del self.blocks[index]


class SineSource:
    """HiFT's neural-source-filter excitation with a phase that runs on across windows.

    Same formula as upstream ``SineGen`` + ``SourceModuleHnNSF`` (harmonics of F0, voiced/unvoiced
    noise, linear merge, tanh), except that the fundamental's phase at a window's first sample is
    the phase the previous window had reached there, so windows agree where they overlap.
    """

    def __init__(self, hift: HiFTGenerator, seed: int, device: torch.device) -> None:
        module = hift.m_source
        self.sine = module.l_sin_gen
        self.merge = module.l_linear
        harmonics = self.sine.harmonic_num + 1
        generator = torch.Generator().manual_seed(seed + 7)
        phases = torch.rand(harmonics, 1, generator=generator) * 2 * math.pi - math.pi
        phases[0] = 0.0
        self.phases = phases
        self.noise = PositionalNoise(seed + 11, harmonics, 8192, device, torch.float32)
        self.cycles: torch.Tensor | None = None  # fundamental cycles of the last window, float64
        self.cycles_start = 0

    def __call__(self, f0: torch.Tensor, start_sample: int) -> torch.Tensor:
        """Excitation (1, 1, L) for upsampled F0 (1, 1, L) starting at sample ``start_sample``."""
        device = f0.device
        increments = f0[0, 0].double() / self.sine.sampling_rate
        cycles = self._phase_at(start_sample) + torch.cumsum(increments, dim=0)
        self.cycles, self.cycles_start = cycles, start_sample
        order = torch.arange(1, self.sine.harmonic_num + 2, device=device, dtype=torch.float64)
        theta = 2 * math.pi * torch.remainder(order[:, None] * cycles[None, :], 1.0)
        sine = self.sine.sine_amp * torch.sin(theta.float() + self.phases.to(device))
        voiced = (f0[0] > self.sine.voiced_threshold).float()
        noise_amp = voiced * self.sine.noise_std + (1 - voiced) * self.sine.sine_amp / 3
        noise = self.noise.frames(start_sample, start_sample + f0.shape[-1])[0]
        self.noise.forget_before(start_sample)
        excitation = sine * voiced + noise_amp * noise  # (harmonics, L)
        merged = torch.tanh(self.merge(excitation.T.to(self.merge.weight.dtype)))
        return merged.T[None]  # (1, 1, L)

    def _phase_at(self, sample: int) -> float:
        if self.cycles is None or sample <= self.cycles_start:
            return 0.0
        index = min(sample - self.cycles_start, self.cycles.numel()) - 1
        return float(self.cycles[index])


class S3GenStream:
    """Turns a growing token sequence into PCM, one window per :meth:`push`."""

    def __init__(self, model: LoadedModel, voice: VoiceConditioning, config: StreamConfig) -> None:
        self.s3gen = model.s3gen
        self.flow = model.s3gen.flow
        self.config = config
        self.device = model.device
        self.dtype = next(self.flow.parameters()).dtype
        self.lookahead = int(self.flow.pre_lookahead_len)
        self.timesteps = 2 if model.s3gen.meanflow else 10
        self.closing_tokens = [SILENCE_TOKEN] * 3 if model.variant is Variant.TURBO else []
        self.noise = PositionalNoise(config.seed, 80, 64, self.device, self.dtype)
        self.source = SineSource(model.s3gen.mel2wav, config.seed, self.device)
        self._prepare_prompt(voice)
        self.tokens: list[int] = []
        self.emitted = 0  # absolute samples handed out (before trims)
        self.windows = 0  # windows decoded so far
        self.tail = np.zeros(0, dtype=np.float32)  # held-back samples [emitted, emitted + len)
        self.finished = False
        self.trim_fade = model.s3gen.trim_fade.detach().cpu().numpy()
        self._lead_left = SAMPLE_RATE * config.leading_trim_ms // 1000
        self._trail = SAMPLE_RATE * config.trailing_trim_ms // 1000
        self._trail_buffer = np.zeros(0, dtype=np.float32)

    @torch.inference_mode()
    def _prepare_prompt(self, voice: VoiceConditioning) -> None:
        """Copy (never mutate) the voice's S3Gen reference and project the speaker embedding."""
        gen = voice.gen
        self.prompt_tokens = gen["prompt_token"].to(self.device, torch.long).reshape(1, -1)
        self.prompt_feat = gen["prompt_feat"].to(self.device, self.dtype).reshape(1, -1, 80)
        embedding = torch.atleast_2d(gen["embedding"]).to(self.device, self.dtype)
        self.speaker = self.flow.spk_embed_affine_layer(
            torch.nn.functional.normalize(embedding, dim=1)
        )
        frames = self.prompt_feat.shape[1]
        self.prompt_noise = self.noise.frames(-frames - self.noise.BLOCK, -self.noise.BLOCK)

    @property
    def pending_tokens(self) -> int:
        """Tokens received whose audio has not been emitted yet."""
        return len(self.tokens) - self.emitted // SAMPLES_PER_TOKEN

    def push(self, tokens: list[int], final: bool = False) -> np.ndarray:
        """Add tokens; return the PCM (float32) that became final. ``final`` flushes everything."""
        if self.finished:
            raise RuntimeError("push() after the final push")
        self.tokens.extend(int(t) for t in tokens)
        if final:
            self.tokens.extend(self.closing_tokens)
        stable = len(self.tokens) if final else len(self.tokens) - self.lookahead
        if final:
            self.finished = True
        if final and stable * SAMPLES_PER_TOKEN <= self.emitted + len(self.tail):
            return self._finish(self.tail)
        if (
            not final
            and stable * SAMPLES_PER_TOKEN - EDGE_SAMPLES - self.config.crossfade <= self.emitted
        ):
            return np.zeros(0, dtype=np.float32)
        start = max(0, self.emitted // SAMPLES_PER_TOKEN - self.config.context_tokens)
        self.windows += 1
        wav = self._decode(start, stable)
        fresh = wav[self.emitted - start * SAMPLES_PER_TOKEN :]
        fresh = self._crossfade(fresh)
        if final:
            return self._finish(fresh)
        keep = len(fresh) - EDGE_SAMPLES - self.config.crossfade
        out, self.tail = fresh[:keep], fresh[keep : keep + self.config.crossfade].copy()
        return self._emit(out)

    def _crossfade(self, fresh: np.ndarray) -> np.ndarray:
        n = min(len(self.tail), len(fresh))
        if n:
            fade_in = (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, n))).astype(np.float32)
            fresh = fresh.copy()
            fresh[:n] = self.tail[:n] * (1.0 - fade_in) + fresh[:n] * fade_in
        self.tail = np.zeros(0, dtype=np.float32)
        return fresh

    def _emit(self, pcm: np.ndarray) -> np.ndarray:
        """Account for ``pcm`` and apply the start fade and trims."""
        start = self.emitted
        self.emitted += len(pcm)
        if start < len(self.trim_fade):
            pcm = pcm.copy()
            n = min(len(pcm), len(self.trim_fade) - start)
            pcm[:n] *= self.trim_fade[start : start + n]
        if self._lead_left:
            cut = min(self._lead_left, len(pcm))
            pcm, self._lead_left = pcm[cut:], self._lead_left - cut
        if self._trail:
            # Hold back the last ``_trail`` samples: they are dropped if the stream ends here.
            joined = np.concatenate([self._trail_buffer, pcm])
            cut = max(0, len(joined) - self._trail)
            pcm, self._trail_buffer = joined[:cut], joined[cut:]
        return pcm.astype(np.float32, copy=False)

    def _finish(self, pcm: np.ndarray) -> np.ndarray:
        out = self._emit(pcm)
        self._trail_buffer = np.zeros(0, dtype=np.float32)
        return out

    @torch.inference_mode()
    def _decode(self, start: int, stop: int) -> np.ndarray:
        """Audio of tokens [start, stop), decoded with tokens up to the newest as right context."""
        window = torch.tensor([self.tokens[start:]], dtype=torch.long, device=self.device)
        mel = self._mel(window, start)[:, :, : (stop - start) * MEL_PER_TOKEN]
        self.noise.forget_before(start * MEL_PER_TOKEN)
        return self._vocode(mel, start * SAMPLES_PER_TOKEN)

    def _mel(self, window: torch.Tensor, start: int) -> torch.Tensor:
        """Mel frames (1, 80, 2 * window) for ``window`` tokens, conditioned on the prompt."""
        flow = self.flow
        tokens = torch.cat([self.prompt_tokens, window], dim=1)
        lengths = torch.tensor([tokens.shape[1]], device=self.device)
        hidden, _ = flow.encoder(flow.input_embedding(tokens), lengths)
        mu = flow.encoder_proj(hidden).transpose(1, 2)  # (1, 80, frames)
        prompt_frames = self.prompt_feat.shape[1]
        frames = mu.shape[2]
        cond = torch.zeros_like(mu)
        cond[:, :, :prompt_frames] = self.prompt_feat.transpose(1, 2)
        first = start * MEL_PER_TOKEN
        noise = self.noise.frames(first, first + frames - prompt_frames)
        z = torch.cat([self.prompt_noise, noise], dim=2)
        mask = torch.ones(1, 1, frames, device=self.device, dtype=mu.dtype)
        mel = self._solve(z, mu, mask, cond)
        return mel[:, :, prompt_frames:]

    def _solve(
        self, z: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        decoder = self.flow.decoder
        t_span = torch.linspace(0, 1, self.timesteps + 1, device=mu.device, dtype=mu.dtype)
        if not self.s3gen.meanflow:
            t_span = 1 - torch.cos(t_span * 0.5 * math.pi)
            return decoder.solve_euler(
                z, t_span=t_span, mu=mu, mask=mask, spks=self.speaker, cond=cond
            )
        x = z
        for t, r in itertools.pairwise(t_span):
            velocity = decoder.estimator.forward(
                x, mask=mask, mu=mu, t=t[None], spks=self.speaker, cond=cond, r=r[None]
            )
            x = x + (r - t) * velocity
        return x

    def _vocode(self, mel: torch.Tensor, start_sample: int) -> np.ndarray:
        hift = self.s3gen.mel2wav
        mel = mel.to(next(hift.parameters()).dtype)
        f0 = hift.f0_predictor(mel)
        excitation = self.source(hift.f0_upsamp(f0[:, None]), start_sample)
        wav = hift.decode(x=mel, s=excitation)
        return wav[0].float().cpu().numpy()
