"""The S3Gen model runner: decodes the windows of many streams in one batch.

Windows of different voices and lengths are padded to the longest and masked, as upstream's
``flow.inference`` does for a batch; the flow itself is :mod:`.flow`.

- **Vocoder**: HiFT's convolutions see past a window's end; each window is vocoded followed by
  ``VOCODER_PAD_FRAMES`` frames of silence, alone or in a batch, so whatever follows in the
  batch is out of their reach (measured: 12 frames leave differences of ~1e-7). The source
  excitation is each stream's own (:class:`SineSource`), phase-continuous across its windows.
- **Transfers**: a stream hands over host data only (numpy); everything of a batch that
  changes per window (tokens, starting noise, source noise and phases, lengths) goes to the
  device in one non-blocking copy of one pinned buffer (:func:`upload`); a voice's prompt
  tokens, prompt mel and projected speaker embedding are made on the device once and kept
  (:class:`VoicePrompts`); the audio of the whole batch comes back in one copy. Nothing else
  crosses, whatever the model's size or step count (tests/engine/test_s3gen_transfers.py).
"""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from chatterbox.models.s3gen.hifigan import HiFTGenerator
from chatterbox.models.s3gen.utils.mask import make_pad_mask

from ..errors import EngineError
from ..model.conditioning import VoiceConditioning
from ..model.loading import LoadedModel
from .flow import check_full_context, encode, solve
from .noise import SineSource

MEL_PER_TOKEN = 2
SAMPLES_PER_MEL = 480
VOCODER_PAD_FRAMES = 12
VOICES_KEPT = 64  # voices whose prompt stays on the device (~160 kB each at full size)


@dataclass(frozen=True)
class WindowInputs:
    """One window as its stream hands it over: host data only."""

    voice: VoiceConditioning  # its prompt goes before the window's tokens
    tokens: np.ndarray  # (window,) int64: the window's speech tokens, each < S3Gen's vocab
    noise: np.ndarray  # (80, prompt frames + window frames) float32: the starting noise
    emit_frames: int  # mel frames whose audio is wanted (the first ones after the prompt)
    start_sample: int  # the window's first sample in the stream
    source: SineSource  # the stream's vocoder excitation

    @property
    def vocoded_samples(self) -> int:
        """Samples the vocoder makes for this window: its frames and the silence after."""
        return (MEL_PER_TOKEN * len(self.tokens) + VOCODER_PAD_FRAMES) * SAMPLES_PER_MEL


@dataclass(frozen=True)
class VoicePrompt:
    """A voice's S3Gen reference on the device, as the flow reads it."""

    tokens: torch.Tensor  # (prompt tokens,) long
    feat: torch.Tensor  # (prompt frames, 80)
    speaker: torch.Tensor  # (80,): the projected speaker embedding


class VoicePrompts:
    """The prompts of the most recently used voices, made on the device once each (in the
    runner's thread: a voice's conditioning is ready on the device before any request uses
    it). Its prompt tokens are checked once, when first used: an id out of S3Gen's embedding
    would be a device-side assert on a GPU, which ends every request of the worker."""

    def __init__(
        self, model: LoadedModel, cuda_graphs: bool = True, dtype: str = "float32"
    ) -> None:
        self.flow = model.s3gen.flow
        self.device = model.device
        self.dtype = next(self.flow.parameters()).dtype
        self.vocab = int(self.flow.input_embedding.num_embeddings)
        self.kept: OrderedDict[int, tuple[VoiceConditioning, VoicePrompt]] = OrderedDict()

    def __getitem__(self, voice: VoiceConditioning) -> VoicePrompt:
        key = id(voice)  # the entry holds the voice, so its id is not reused while kept
        if key not in self.kept:
            self.kept[key] = (voice, self._make(voice))
            while len(self.kept) > VOICES_KEPT:
                self.kept.popitem(last=False)
        self.kept.move_to_end(key)
        return self.kept[key][1]

    def _make(self, voice: VoiceConditioning) -> VoicePrompt:
        gen = {k: self._here(v) for k, v in voice.gen.items() if torch.is_tensor(v)}
        tokens = gen["prompt_token"].reshape(-1).long()
        if tokens.numel() and not bool(((tokens >= 0) & (tokens < self.vocab)).all()):
            raise EngineError(
                f"the voice's S3Gen prompt tokens (gen['prompt_token']) hold ids outside 0..."
                f"{self.vocab - 1}: its conditioning is corrupt or from another model; "
                "prepare the voice again from its clip"
            )
        embedding = torch.atleast_2d(gen["embedding"]).to(self.dtype)
        speaker = self.flow.spk_embed_affine_layer(F.normalize(embedding, dim=1))[0]
        return VoicePrompt(tokens, gen["prompt_feat"].reshape(-1, 80).to(self.dtype), speaker)

    def _here(self, value: torch.Tensor) -> torch.Tensor:
        """The voice's tensor on the model's device: already there unless made elsewhere."""
        return value if value.device == self.device else value.to(self.device)


def upload(arrays: Sequence[np.ndarray], device: torch.device) -> list[torch.Tensor]:
    """The arrays on ``device`` (float32, same shapes): one pinned host buffer filled through
    its numpy view, one non-blocking copy. Integers pass exactly below 2**24. The host buffer
    comes from torch's pinned-memory cache, which reuses it only once its copy is done."""
    bounds = [0, *itertools.accumulate(int(a.size) for a in arrays)]
    host = torch.empty(bounds[-1], dtype=torch.float32, pin_memory=device.type == "cuda")
    view = host.numpy()
    for array, start, stop in zip(arrays, bounds, bounds[1:], strict=False):
        view[start:stop] = array.reshape(-1)
    staged = host.to(device, non_blocking=True)
    return [staged[a:b].view(x.shape) for x, a, b in zip(arrays, bounds, bounds[1:], strict=False)]


@dataclass(frozen=True)
class _Staged:
    """A batch's per-window inputs on the device (see :func:`upload`)."""

    lengths: torch.Tensor  # (batch,) long: prompt + window tokens
    tokens: list[torch.Tensor]  # (window,) float32 ids
    noise: list[torch.Tensor]  # (80, frames)
    source: list[torch.Tensor]  # (harmonics, 1 + vocoded samples): SineSource.host_inputs


class S3GenRunner:
    def __init__(
        self, model: LoadedModel, cuda_graphs: bool = True, dtype: str = "float32"
    ) -> None:
        self.flow = model.s3gen.flow
        check_full_context(self.flow)
        self.hift = model.s3gen.mel2wav
        self.device = model.device
        self.meanflow = bool(model.s3gen.meanflow)
        self.timesteps = 2 if self.meanflow else 10
        self.prompts = VoicePrompts(model)
        _keep_stft_window_on_device(self.hift, self.device)
        host_trim_fade(model)  # read now, so that no stream reads it on the event loop

    @torch.inference_mode()
    def decode(self, windows: list[WindowInputs]) -> list[np.ndarray]:
        """The audio (float32, ``emit_frames * 480`` samples) of each window."""
        staged = self._upload(windows)
        return self._vocode(windows, self._mels(windows, staged), staged)

    def _upload(self, windows: list[WindowInputs]) -> _Staged:
        prompts = [self.prompts[w.voice] for w in windows]
        lengths = np.array(
            [len(p.tokens) + len(w.tokens) for w, p in zip(windows, prompts, strict=True)]
        )
        sources = [w.source.host_inputs(w.start_sample, w.vocoded_samples) for w in windows]
        arrays = [lengths, *(w.tokens for w in windows), *(w.noise for w in windows), *sources]
        staged = upload(arrays, self.device)
        n = len(windows)
        return _Staged(
            staged[0].long(), staged[1 : n + 1], staged[n + 1 : 2 * n + 1], staged[2 * n + 1 :]
        )

    # --- flow -----------------------------------------------------------------------------------

    def _mels(
        self, windows: list[WindowInputs], staged: _Staged | None = None
    ) -> list[torch.Tensor]:
        """Each window's mel (80, frames after its prompt), its lookahead frames included
        (tests call it alone, to compare the mel with upstream's)."""
        staged = staged or self._upload(windows)
        prompts = [self.prompts[w.voice] for w in windows]
        flow = self.flow
        lengths = [len(p.tokens) + len(w.tokens) for w, p in zip(windows, prompts, strict=True)]
        tokens = torch.zeros(len(windows), max(lengths), dtype=torch.long, device=self.device)
        for i, prompt in enumerate(prompts):
            tokens[i, : len(prompt.tokens)] = prompt.tokens
            tokens[i, len(prompt.tokens) : lengths[i]] = staged.tokens[i]
        valid = ~make_pad_mask(staged.lengths, tokens.shape[1])
        embeds = flow.input_embedding(tokens) * valid[..., None].to(flow.input_embedding.weight)
        mu = flow.encoder_proj(encode(flow, embeds, staged.lengths)).transpose(1, 2)
        cond = torch.zeros_like(mu)  # (batch, 80, frames)
        noise = torch.zeros_like(mu)
        mask = torch.zeros(len(windows), 1, mu.shape[2], device=self.device, dtype=mu.dtype)
        frames = [MEL_PER_TOKEN * length for length in lengths]
        for i, prompt in enumerate(prompts):
            cond[i, :, : prompt.feat.shape[0]] = prompt.feat.T
            noise[i, :, : frames[i]] = staged.noise[i]
            mask[i, :, : frames[i]] = 1.0
        speakers = torch.stack([p.speaker for p in prompts])
        mel = solve(flow, noise, mu, mask, cond, speakers, self.timesteps, self.meanflow)
        # Each window's mel starts after its prompt tokens' frames, as its noise and tokens do:
        # a prompt mel of 2n + 1 frames (upstream's embed_ref can give one) conditions the first
        # generated frame as upstream's does, without shifting the window by a frame.
        return [mel[i, :, MEL_PER_TOKEN * len(p.tokens) : frames[i]] for i, p in enumerate(prompts)]

    # --- vocoder --------------------------------------------------------------------------------

    def _vocode(
        self, windows: list[WindowInputs], mels: list[torch.Tensor], staged: _Staged
    ) -> list[np.ndarray]:
        hift = self.hift
        dtype = next(hift.parameters()).dtype
        padded = [F.pad(mel, (0, VOCODER_PAD_FRAMES)) for mel in mels]
        longest = max(m.shape[1] for m in padded)
        batch = torch.stack([F.pad(m, (0, longest - m.shape[1])) for m in padded]).to(dtype)
        f0 = hift.f0_predictor(batch)
        f0 = hift.f0_upsamp(f0[:, None])  # (batch, 1, samples)
        excitation = torch.zeros_like(f0)
        for i, window in enumerate(windows):
            samples = window.vocoded_samples
            excitation[i, :, :samples] = window.source(
                f0[i : i + 1, :, :samples], window.start_sample, staged.source[i]
            )[0]
        wav = hift.decode(x=batch, s=excitation)
        emitted = [w.emit_frames * SAMPLES_PER_MEL for w in windows]
        audio = torch.cat([wav[i, :n] for i, n in enumerate(emitted)]).float().cpu().numpy()
        return np.split(audio, list(itertools.accumulate(emitted))[:-1])


def _keep_stft_window_on_device(hift: HiFTGenerator, device: torch.device) -> None:
    """HiFT's stft window is a plain attribute, which moving the model leaves on the host:
    every stft would copy it to the device. Registered as a (non-persistent) buffer on the
    device, it stays there and moves with the model; the state dict is unchanged."""
    if "stft_window" not in dict(hift.named_buffers(recurse=False)):
        window = hift.stft_window
        del hift.stft_window
        hift.register_buffer("stft_window", window.to(device), persistent=False)


_TRIM_FADES: weakref.WeakKeyDictionary[object, np.ndarray] = weakref.WeakKeyDictionary()


def host_trim_fade(model: LoadedModel) -> np.ndarray:
    """Upstream's fade-in of a stream's first samples (``S3Gen.trim_fade``, a device buffer),
    read to the host once per model."""
    s3gen = model.s3gen
    if s3gen not in _TRIM_FADES:
        _TRIM_FADES[s3gen] = s3gen.trim_fade.detach().cpu().numpy()
    return _TRIM_FADES[s3gen]
