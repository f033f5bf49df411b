"""Incremental S3Gen decoding: speech tokens in, seamless 24 kHz PCM out, at bounded cost.

Upstream has no streaming path (``flow.inference(finalize=False)`` crashes) and re-decoding the
whole prefix per slice is quadratic. A stream decodes one *window* at a time: the voice prompt,
a bounded left context of already emitted tokens, and the new tokens. This module keeps one
stream's state and decides each window (:meth:`S3GenStream.plan`), hands its inputs to the
batched decoder (:mod:`.runner`, which decodes the windows of many streams at once), and
turns the decoded audio into what may be emitted (:meth:`S3GenStream.complete`).

- Noise is fixed per absolute mel frame and vocoder sample (:mod:`.noise`), so overlapping
  windows see the same noise where they overlap, and a seed reproduces the audio.
- The last ``pre_lookahead_len`` tokens wait for their right context unless the stream is final
  (what upstream's ``finalize=False`` intends).
- Each window's audio replaces the held-back tail of the previous one with a crossfade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from common.audio import SAMPLE_RATE
from common.params import OverlapMethod

from ..errors import EngineError
from ..model.conditioning import VoiceConditioning
from ..model.loading import LoadedModel
from .noise import PositionalNoise, SineSource
from .runner import VOCODER_PAD_FRAMES, S3GenRunner, WindowInputs, host_trim_fade

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
        """Host work only (it runs on the event loop): the voice's prompt is made on the device
        by the runner, in its own thread."""
        self.model = model
        self.voice = voice
        self.config = config
        flow = model.s3gen.flow
        self.vocab = int(flow.input_embedding.num_embeddings)
        self.lookahead = int(flow.pre_lookahead_len)
        self.closing_tokens = [SILENCE_TOKEN] * 3 if model.variant.turbo_family else []
        self.noise = PositionalNoise(config.seed, 80, 64)
        self.source = SineSource(model.s3gen.mel2wav, config.seed)
        # The prompt's part of the flow's frames is 2 per prompt token (a shape: nothing is read
        # from the device); upstream's embed_ref may give one prompt mel frame more than that.
        frames = MEL_PER_TOKEN * voice.gen["prompt_token"].numel()
        self.prompt_noise = self.noise.frames(-frames - self.noise.BLOCK, -self.noise.BLOCK)
        self.tokens: list[int] = []
        self.emitted = 0  # absolute samples handed out (before trims)
        self.windows = 0  # windows decoded so far
        self.tail = np.zeros(0, dtype=np.float32)  # held-back samples [emitted, emitted + len)
        self.finished = False
        self.trim_fade = host_trim_fade(model)
        self._lead_left = SAMPLE_RATE * config.leading_trim_ms // 1000
        self._trail = SAMPLE_RATE * config.trailing_trim_ms // 1000
        self._trail_buffer = np.zeros(0, dtype=np.float32)

    @property
    def pending_tokens(self) -> int:
        """Tokens received whose audio has not been emitted yet."""
        return len(self.tokens) - self.emitted // SAMPLES_PER_TOKEN

    def push(self, tokens: list[int], final: bool = False) -> np.ndarray:
        """Add tokens and decode the window they make (alone, not batched); the PCM emitted."""
        work = self.plan(tokens, final)
        if isinstance(work, np.ndarray):
            return work
        runner = S3GenRunner(self.model, cuda_graphs=False)  # a runner per call: nothing to reuse
        return self.complete(work, runner.decode([self.inputs(work)])[0])

    def plan(self, tokens: list[int], final: bool = False) -> Window | np.ndarray:
        """Add tokens; the window to decode now, or (nothing to decode) the PCM to emit."""
        if self.finished:
            raise RuntimeError("plan() after the final window")
        self._check(tokens)
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

    def _check(self, tokens: list[int]) -> None:
        """On the host, before S3Gen's embedding sees them: an id out of its rows would be a
        device-side assert on a GPU, which ends every request of the worker."""
        bad = next((t for t in tokens if not 0 <= t < self.vocab), None)
        if bad is not None:
            raise EngineError(
                f"T3 produced speech token {bad}, outside S3Gen's {self.vocab} tokens (0..."
                f"{self.vocab - 1}), so this request's audio was stopped; the other requests "
                "were not affected. Retry; if it recurs, report it with the model and MODEL_DTYPE"
            )

    def inputs(self, window: Window) -> WindowInputs:
        """The window's inputs for the runner: host data (numpy), nothing on the device."""
        first_frame = window.start * MEL_PER_TOKEN
        frames = (len(self.tokens) - window.start) * MEL_PER_TOKEN
        noise = self.noise.frames(first_frame, first_frame + frames)
        self.noise.forget_before(first_frame)
        start_sample = window.start * SAMPLES_PER_TOKEN
        vocoded = (frames + VOCODER_PAD_FRAMES) * SAMPLES_PER_MEL
        return WindowInputs(
            voice=self.voice,
            tokens=np.array(self.tokens[window.start :], dtype=np.int64),
            noise=np.concatenate([self.prompt_noise, noise], axis=1),
            emit_frames=(window.stop - window.start) * MEL_PER_TOKEN,
            start_sample=start_sample,
            source=self.source,
            source_inputs=self.source.host_inputs(start_sample, vocoded),
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
