"""The S3Gen model runner: decodes the windows of many streams in one batch.

The host side of a batch: the windows' inputs laid out for their :class:`~.window_step.Bucket`
and the bucket run (replayed from a CUDA graph where there is one, :mod:`.graphs`); the device
side is :class:`~.window_step.WindowStep`.

- **Shapes**: with ``static`` (on by default where CUDA graphs are: a GPU with
  ``CUDA_GRAPHS``), a batch takes its bucket's shapes (rows to a power of two, tokens and
  vocoded tokens rounded up), so a few graphs serve every batch; otherwise its own sizes
  (the padding would only cost a CPU time).
- **Vocoder**: HiFT's convolutions see past a window's end; each window is vocoded followed by
  ``VOCODER_PAD_FRAMES`` frames of silence, alone or in a batch, so whatever follows in the
  batch is out of their reach (measured: 12 frames leave differences of ~1e-7). The source
  excitation is each stream's own (:class:`SineSource`), phase-continuous across its windows.
- **Transfers**: a stream hands over host data only (numpy); a voice's prompt tokens, prompt
  mel and projected speaker embedding are read to the host once (:class:`VoicePrompts`), so
  everything a batch needs is written into one pinned host buffer in the bucket's layout and
  copied once, non-blocking, into the bucket's input buffer; the audio of the whole batch comes
  back in one copy. Nothing else crosses, whatever the model's size or step count
  (tests/engine/test_s3gen_transfers.py); a handful of operators per window run outside the
  step (tests/engine/test_s3gen_static.py counts them).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from chatterbox.models.s3gen.hifigan import HiFTGenerator

from ..errors import EngineError
from ..model.conditioning import VoiceConditioning
from ..model.loading import LoadedModel
from .flow import check_full_context
from .graphs import GraphedWindows
from .noise import SineSource
from .window_step import MEL_PER_TOKEN, SAMPLES_PER_MEL, VOCODER_PAD_FRAMES, Bucket, WindowStep

VOICES_KEPT = 64  # voices whose prompt stays on the host (~160 kB each at full size)
DTYPES = {"float32": None, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class WindowInputs:
    """One window as its stream hands it over: host data only."""

    voice: VoiceConditioning  # its prompt goes before the window's tokens
    tokens: np.ndarray  # (window,) int64: the window's speech tokens, each < S3Gen's vocab
    noise: np.ndarray  # (80, prompt frames + window frames) float32: the starting noise
    emit_frames: int  # mel frames whose audio is wanted (the first ones after the prompt)
    start_sample: int  # the window's first sample in the stream
    source: SineSource  # the stream's vocoder excitation (its phase state on the device)
    source_inputs: np.ndarray  # (harmonics, 1 + vocoded samples): SineSource.host_inputs

    @property
    def vocoded_samples(self) -> int:
        """Samples the vocoder makes for this window: its frames and the silence after."""
        return (MEL_PER_TOKEN * len(self.tokens) + VOCODER_PAD_FRAMES) * SAMPLES_PER_MEL


@dataclass(frozen=True)
class VoicePrompt:
    """A voice's S3Gen reference on the host, as the flow reads it."""

    tokens: np.ndarray  # (prompt tokens,) int64
    feat: np.ndarray  # (80, prompt frames) float32
    speaker: np.ndarray  # (80,) float32: the projected speaker embedding


class VoicePrompts:
    """The prompts of the most recently used voices, read to the host once each (in the
    runner's thread: a voice's conditioning is ready on the device before any request uses
    it): one sync per voice. Its prompt tokens are checked then: an id out of S3Gen's embedding
    would be a device-side assert on a GPU, which ends every request of the worker."""

    def __init__(self, model: LoadedModel) -> None:
        self.flow = model.s3gen.flow
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

    @torch.inference_mode()
    def _make(self, voice: VoiceConditioning) -> VoicePrompt:
        gen = voice.gen
        weight = self.flow.spk_embed_affine_layer.weight
        embedding = torch.atleast_2d(gen["embedding"]).to(weight)
        speaker = self.flow.spk_embed_affine_layer(F.normalize(embedding, dim=1))[0]
        tokens, feat = gen["prompt_token"].reshape(-1), gen["prompt_feat"].reshape(-1, 80)
        parts = [tokens.to(torch.float64), feat.to(weight).double().T.reshape(-1), speaker.double()]
        # The voice's tensors are on the model's device unless made elsewhere.
        here = [p if p.device == weight.device else p.to(weight.device) for p in parts]
        host = torch.cat(here).cpu().numpy()  # the one sync
        ids = host[: tokens.numel()]
        if ids.size and not ((ids >= 0) & (ids < self.vocab)).all():
            raise EngineError(
                f"the voice's S3Gen prompt tokens (gen['prompt_token']) hold ids outside 0..."
                f"{self.vocab - 1}: its conditioning is corrupt or from another model; "
                "prepare the voice again from its clip"
            )
        frames = feat.shape[0]
        return VoicePrompt(
            ids.astype(np.int64),
            host[tokens.numel() : tokens.numel() + 80 * frames]
            .reshape(80, frames)
            .astype(np.float32),
            host[-80:].astype(np.float32),
        )


class S3GenRunner:
    def __init__(
        self, model: LoadedModel, cuda_graphs: bool = True, dtype: str = "float32",
        static: bool | None = None,
    ) -> None:  # fmt: skip
        """``static``: pad batches to their bucket's shapes (default: where graphs are used)."""
        flow = model.s3gen.flow
        check_full_context(flow)
        if dtype not in DTYPES:
            raise ValueError(f"S3Gen's dtype: one of {', '.join(DTYPES)}, not {dtype!r}")
        self.hift = model.s3gen.mel2wav
        self.flow = flow
        self.device = model.device
        self.meanflow = bool(model.s3gen.meanflow)
        self.timesteps = 2 if self.meanflow else 10
        self.prompts = VoicePrompts(model)
        _keep_stft_window_on_device(self.hift, self.device)
        host_trim_fade(model)  # read now, so that no stream reads it on the event loop
        self.step = WindowStep(flow, self.hift, self.timesteps, self.meanflow, DTYPES[dtype])
        self.graphs = GraphedWindows(self.step, self.device, cuda_graphs)
        self.static = self.graphs.enabled if static is None else static
        self.harmonics = self.hift.m_source.l_sin_gen.harmonic_num + 1
        self.seen: set[tuple[int, int]] = set()  # (tokens, vocoded) of the buckets run

    def bucket(self, windows: list[WindowInputs], prompts: list[VoicePrompt]) -> Bucket:
        tokens = max(len(p.tokens) + len(w.tokens) for w, p in zip(windows, prompts, strict=True))
        vocoded = max(len(w.tokens) for w in windows)
        return Bucket.fitting(len(windows), tokens, vocoded, self.harmonics, self.static)

    @torch.inference_mode()
    def decode(self, windows: list[WindowInputs]) -> list[np.ndarray]:
        """The audio (float32, ``emit_frames * 480`` samples) of each window."""
        prompts = [self.prompts[w.voice] for w in windows]
        bucket = self.bucket(windows, prompts)
        audio, cycles = self.graphs(bucket, *self._stage(bucket, windows, prompts))
        self.seen.add((bucket.tokens, bucket.vocoded))
        for i, window in enumerate(windows):
            window.source.remember(cycles[i].clone(), window.start_sample)
        wav = audio.cpu().numpy()  # the batch's one read-back
        return [wav[i, : w.emit_frames * SAMPLES_PER_MEL].copy() for i, w in enumerate(windows)]

    @torch.inference_mode()
    def prepare(self, largest: int) -> int:
        """Capture every bucket already seen at every row count up to ``largest`` (a benchmark's
        warm-up, so that no capture falls in its timed pass); the graphs made."""
        if not self.graphs.enabled:
            return 0
        made = len(self.graphs.graphs)
        for tokens, vocoded in sorted(self.seen):
            for rows in (1 << n for n in range(largest.bit_length() + 1)):
                bucket = Bucket.fitting(min(rows, largest), tokens, vocoded, self.harmonics, True)
                if bucket not in self.graphs.graphs:
                    flat, phase0 = self.graphs.inputs(bucket)
                    bucket.split(flat)["lengths"].fill_(bucket.tokens)
                    self.graphs(bucket, flat, phase0)
        return len(self.graphs.graphs) - made

    def _stage(
        self, bucket: Bucket, windows: list[WindowInputs], prompts: list[VoicePrompt]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's inputs in the bucket's buffers: one upload of the host layout, and each
        stream's starting source phase (on the device already)."""
        host = torch.empty(bucket.size(), pin_memory=self.device.type == "cuda")
        flat = host.numpy()
        flat.fill(0.0)
        views = _numpy_views(bucket, flat)
        for i, (w, p) in enumerate(zip(windows, prompts, strict=True)):
            length = len(p.tokens) + len(w.tokens)
            views["lengths"][i] = length
            views["prompt_tokens"][i] = len(p.tokens)
            views["tokens"][i, : len(p.tokens)] = p.tokens
            views["tokens"][i, len(p.tokens) : length] = w.tokens
            views["noise"][i, :, : w.noise.shape[1]] = w.noise
            # The whole prompt mel conditions, as in upstream's flow: 2n or 2n + 1 frames for n
            # prompt tokens (embed_ref can give one more); the window's noise, mel and audio are
            # placed by the prompt's tokens (2 frames each), as the encoder's frames are.
            views["cond"][i, :, : p.feat.shape[1]] = p.feat
            views["speakers"][i] = p.speaker
            views["source_samples"][i] = w.vocoded_samples
            views["source"][i, :, : 1 + w.vocoded_samples] = w.source_inputs
        for i in range(len(windows), bucket.batch):  # rows that only fill the bucket
            views["lengths"][i] = bucket.tokens
        inputs, phase0 = self.graphs.inputs(bucket)
        inputs.copy_(host, non_blocking=True)
        phase0.zero_()
        for i, window in enumerate(windows):
            phase = window.source.phase_at(window.start_sample)
            if phase is not None:
                phase0[i] = phase
        return inputs, phase0

    @torch.inference_mode()
    def _mels(self, windows: list[WindowInputs]) -> list[torch.Tensor]:
        """Each window's mel (80, frames after its prompt), its lookahead frames included
        (tests call it, to compare the mel with upstream's)."""
        prompts = [self.prompts[w.voice] for w in windows]
        bucket = self.bucket(windows, prompts)
        inputs, _ = self._stage(bucket, windows, prompts)
        mel = self.step.mels(bucket, bucket.split(inputs))
        starts = [MEL_PER_TOKEN * len(p.tokens) for p in prompts]  # by the prompt's tokens
        return [
            mel[i, :, start : start + MEL_PER_TOKEN * len(w.tokens)]
            for i, (w, start) in enumerate(zip(windows, starts, strict=True))
        ]


def _numpy_views(bucket: Bucket, flat: np.ndarray) -> dict[str, np.ndarray]:
    views, start = {}, 0
    for name, shape in bucket.layout().items():
        size = int(np.prod(shape))
        views[name] = flat[start : start + size].reshape(shape)
        start += size
    return views


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
