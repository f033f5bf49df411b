"""A batch of S3Gen windows as device work only, on the shapes of its :class:`Bucket`.

Every window of a batch is padded to the bucket's number of rows, tokens (prompt + context +
window) and vocoded tokens, and masked, so the encoder, the flow's Euler steps (with CFG) and
HiFT run on a few fixed shapes per batch size: each bucket's :class:`WindowStep` call is
captured once in a CUDA graph on a GPU (:mod:`.graphs`) and compiles whole
(``torch.compile(fullgraph=True)``) on a CPU. The step reads one flat float32 input (laid out by
:meth:`Bucket.layout`, staged by the runner in one upload) and the rows' starting source phases,
and returns the audio and the source's cycles; it never reads a value back to the host and
never branches on one.

A padded row or position changes nothing in a window's audio beyond float rounding: the
padding is masked as upstream's ``flow.inference`` masks a batch (:mod:`.flow`), and the vocoder
sees zero frames after each window's own plus ``VOCODER_PAD_FRAMES`` (tests/engine/
test_s3gen_static.py holds every bucket edge to ``PADDING_TOLERANCE``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec
from chatterbox.models.s3gen.hifigan import HiFTGenerator

from .flow import encode, solve
from .vocoder import Stft, decode, excitation, plain_int_shapes

MEL_PER_TOKEN = 2
SAMPLES_PER_MEL = 480
VOCODER_PAD_FRAMES = 12
MELS = 80
TOKEN_BUCKET = 64  # rows' tokens (prompt + context + window) rounded up to a multiple of this
VOCODED_BUCKET = 32  # vocoded tokens (context + window) likewise
PADDING_TOLERANCE = 2e-4  # a padded window's audio against its unpadded decode (float32)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


@dataclass(frozen=True)
class Bucket:
    batch: int
    tokens: int  # per row: prompt + context + window, padded
    vocoded: int  # per row: the window's tokens (context + new), padded
    harmonics: int

    @classmethod
    def fitting(cls, rows: int, tokens: int, vocoded: int, harmonics: int, static: bool) -> Bucket:
        """The bucket for a batch: its rows rounded up to a power of two and its lengths to
        ``TOKEN_BUCKET``/``VOCODED_BUCKET`` if ``static``, else the batch's own sizes."""
        if not static:
            return cls(rows, tokens, vocoded, harmonics)
        return cls(
            1 << (rows - 1).bit_length(), _round_up(tokens, TOKEN_BUCKET),
            _round_up(vocoded, VOCODED_BUCKET), harmonics,
        )  # fmt: skip

    @property
    def frames(self) -> int:
        return MEL_PER_TOKEN * self.tokens

    @property
    def vocoder_frames(self) -> int:
        return MEL_PER_TOKEN * self.vocoded + VOCODER_PAD_FRAMES

    @property
    def samples(self) -> int:
        """Samples the vocoder makes per row."""
        return self.vocoder_frames * SAMPLES_PER_MEL

    def layout(self) -> dict[str, tuple[int, ...]]:
        """The flat input's parts, in order, with their shapes (float32 each)."""
        b = self.batch
        return {
            "lengths": (b,),  # prompt + window tokens
            "prompt_tokens": (b,),  # the window's mel starts 2 frames per prompt token in
            "tokens": (b, self.tokens),  # ids (exact in float32 below 2**24)
            "noise": (b, MELS, self.frames),  # the flow's starting noise, 0 after the row's frames
            "cond": (b, MELS, self.frames),  # the prompt's mel, 0 after it
            "speakers": (b, MELS),  # projected speaker embeddings
            "source_samples": (b,),  # the row's own vocoded samples
            "source": (b, self.harmonics, 1 + self.samples),  # SineSource.host_inputs, 0-padded
        }

    def size(self) -> int:
        return sum(_numel(shape) for shape in self.layout().values())

    def split(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        parts, start = {}, 0
        for name, shape in self.layout().items():
            parts[name] = flat[start : start + _numel(shape)].view(shape)
            start += _numel(shape)
        return parts


def _numel(shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= n
    return size


class WindowStep:
    """The device work of one batch of windows (see the module's doc)."""

    def __init__(
        self, flow: CausalMaskedDiffWithXvec, hift: HiFTGenerator, timesteps: int,
        meanflow: bool, dtype: torch.dtype | None = None,
    ) -> None:  # fmt: skip
        self.flow, self.hift = flow, hift
        self.timesteps, self.meanflow = timesteps, meanflow
        self.dtype = dtype  # None: the model's own (float32); else autocast to it
        self.stft = Stft(hift)
        plain_int_shapes(hift)

    def __call__(
        self, bucket: Bucket, flat: torch.Tensor, phase0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio (batch, vocoded tokens x 960) and the source's cycles (batch, samples)."""
        inputs = bucket.split(flat)
        mel = self.mels(bucket, inputs)
        return self.vocode(bucket, inputs, mel, phase0)

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager[object]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype, cache_enabled=False)

    def mels(self, bucket: Bucket, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The rows' mel (batch, 80, frames), the prompt's frames included."""
        flow = self.flow
        lengths = inputs["lengths"].long()
        positions = torch.arange(bucket.tokens, device=lengths.device)
        valid = positions[None, :] < lengths[:, None]
        with self._autocast(lengths.device):
            embeds = flow.input_embedding(inputs["tokens"].long()) * valid[..., None]
            mu = flow.encoder_proj(encode(flow, embeds, lengths)).transpose(1, 2)
            frames = torch.arange(bucket.frames, device=lengths.device)
            mask = (frames[None, None, :] < MEL_PER_TOKEN * lengths[:, None, None]).to(mu.dtype)
            return solve(
                flow, inputs["noise"].to(mu.dtype), mu, mask, inputs["cond"].to(mu.dtype),
                inputs["speakers"].to(mu.dtype), self.timesteps, self.meanflow,
            ).float()  # fmt: skip

    def vocode(
        self, bucket: Bucket, inputs: dict[str, torch.Tensor], mel: torch.Tensor,
        phase0: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """Each row's frames after its prompt, then silence, through HiFT."""
        hift = self.hift
        own = MEL_PER_TOKEN * bucket.vocoded
        start = MEL_PER_TOKEN * inputs["prompt_tokens"].long()
        index = start[:, None] + torch.arange(own, device=mel.device)[None, :]
        inside = index < MEL_PER_TOKEN * inputs["lengths"].long()[:, None]
        index = index.clamp(max=bucket.frames - 1)
        window = torch.gather(mel, 2, index[:, None, :].expand(-1, MELS, -1))
        window = F.pad(window * inside[:, None, :].to(mel.dtype), (0, VOCODER_PAD_FRAMES))
        with self._autocast(mel.device):
            f0 = hift.f0_upsamp(hift.f0_predictor(window)[:, None]).float()
        source, cycles = excitation(
            hift, f0, phase0, inputs["source"], inputs["source_samples"].long()
        )
        with self._autocast(mel.device):
            audio = decode(hift, self.stft, window, source)
        return audio[:, : own * SAMPLES_PER_MEL].float(), cycles
