"""Incremental S3Gen decoding: speech tokens in, seamless 24 kHz PCM out, at bounded cost.

Upstream has no streaming path (``flow.inference(finalize=False)`` crashes) and re-decoding the
whole prefix per slice is quadratic. A stream decodes one *window* at a time: the voice prompt,
a bounded left context of already emitted tokens, and the new tokens. This module keeps one
stream's state and decides each window (:meth:`S3GenStream.plan`), hands its inputs to the
batched decoder (:mod:`s3gen_runner`, which decodes the windows of many streams at once), and
turns the decoded audio into what may be emitted (:meth:`S3GenStream.complete`).

- Noise is fixed per absolute mel frame and vocoder sample (:mod:`s3gen_noise`), so overlapping
  windows see the same noise where they overlap, and a seed reproduces the audio.
- The last ``pre_lookahead_len`` tokens wait for their right context unless the stream is final
  (what upstream's ``finalize=False`` intends).
- Each window's audio replaces the held-back tail of the previous one with a crossfade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from common.audio import SAMPLE_RATE
from common.params import OverlapMethod

from .conditioning import VoiceConditioning
from .loading import LoadedModel
from .s3gen_noise import PositionalNoise, SineSource
from .s3gen_runner import S3GenRunner, WindowInputs

MEL_PER_TOKEN = 2
SAMPLES_PER_MEL = 480
SAMPLES_PER_TOKEN = MEL_PER_TOKEN * SAMPLES_PER_MEL
CONTEXT_TOKENS = 12  # left context re-decoded with each window ("full" overlap): 480 ms
EDGE_SAMPLES = 2 * SAMPLES_PER_MEL  # right-edge samples never emitted before the next window
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


@dataclass(frozen=True)
class Window:
    """A window to decode: tokens ``[start, len)``, of which ``[start, stop)`` may be emitted."""

    start: int
    stop: int
    final: bool


class S3GenStream:
    """One stream's S3Gen state: its tokens, what has been emitted, the tail held back."""

    def __init__(self, model: LoadedModel, voice: VoiceConditioning, config: StreamConfig) -> None:
        self.model = model
        self.flow = model.s3gen.flow
        self.config = config
        self.device = model.device
        self.dtype = next(self.flow.parameters()).dtype
        self.lookahead = int(self.flow.pre_lookahead_len)
        self.closing_tokens = [SILENCE_TOKEN] * 3 if model.variant.turbo_family else []
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
        self.prompt_tokens = gen["prompt_token"].to(self.device, torch.long).reshape(-1)
        self.prompt_feat = gen["prompt_feat"].to(self.device, self.dtype).reshape(-1, 80)
        embedding = torch.atleast_2d(gen["embedding"]).to(self.device, self.dtype)
        self.speaker = self.flow.spk_embed_affine_layer(
            torch.nn.functional.normalize(embedding, dim=1)
        )[0]
        frames = self.prompt_feat.shape[0]
        self.prompt_noise = self.noise.frames(-frames - self.noise.BLOCK, -self.noise.BLOCK)[0]

    @property
    def pending_tokens(self) -> int:
        """Tokens received whose audio has not been emitted yet."""
        return len(self.tokens) - self.emitted // SAMPLES_PER_TOKEN

    def push(self, tokens: list[int], final: bool = False) -> np.ndarray:
        """Add tokens and decode the window they make (alone, not batched); the PCM emitted."""
        work = self.plan(tokens, final)
        if isinstance(work, np.ndarray):
            return work
        return self.complete(work, S3GenRunner(self.model).decode([self.inputs(work)])[0])

    def plan(self, tokens: list[int], final: bool = False) -> Window | np.ndarray:
        """Add tokens; the window to decode now, or (nothing to decode) the PCM to emit."""
        if self.finished:
            raise RuntimeError("plan() after the final window")
        self.tokens.extend(int(t) for t in tokens)
        if final:
            self.tokens.extend(self.closing_tokens)
            self.finished = True
        stable = len(self.tokens) if final else len(self.tokens) - self.lookahead
        if final and stable * SAMPLES_PER_TOKEN <= self.emitted + len(self.tail):
            return self._finish(self.tail)
        if (
            not final
            and stable * SAMPLES_PER_TOKEN - EDGE_SAMPLES - self.config.crossfade <= self.emitted
        ):
            return np.zeros(0, dtype=np.float32)
        self.windows += 1
        start = max(0, self.emitted // SAMPLES_PER_TOKEN - self.config.context_tokens)
        return Window(start, stable, final)

    def inputs(self, window: Window) -> WindowInputs:
        first_frame = window.start * MEL_PER_TOKEN
        frames = (len(self.tokens) - window.start) * MEL_PER_TOKEN
        tokens = torch.tensor(self.tokens[window.start :], dtype=torch.long, device=self.device)
        noise = self.noise.frames(first_frame, first_frame + frames)[0]
        self.noise.forget_before(first_frame)
        return WindowInputs(
            tokens=torch.cat([self.prompt_tokens, tokens]),
            prompt_feat=self.prompt_feat,
            speaker=self.speaker,
            noise=torch.cat([self.prompt_noise, noise], dim=1),
            emit_frames=(window.stop - window.start) * MEL_PER_TOKEN,
            start_sample=window.start * SAMPLES_PER_TOKEN,
            source=self.source,
        )

    def complete(self, window: Window, wav: np.ndarray) -> np.ndarray:
        """The PCM to emit, given the decoded audio of ``window`` (its tokens [start, stop))."""
        fresh = self._crossfade(wav[self.emitted - window.start * SAMPLES_PER_TOKEN :])
        if window.final:
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
