"""S3Gen's randomness, indexed by absolute position so that overlapping windows agree.

Upstream draws fresh noise on every call and a random source phase per vocoder call, so two
decodes of the same stretch never match and streamed windows would not join. Here the flow's
starting noise is drawn per absolute mel frame and the vocoder source's noise per absolute
sample, in blocks generated from ``(seed, block index)``; the source's fundamental continues its
phase from one window to the next. The same seed gives the same audio.

The noise is drawn on the host and kept there (numpy): the runner uploads a batch's noise with
the rest of the batch, in one copy.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from chatterbox.models.s3gen.hifigan import HiFTGenerator


class PositionalNoise:
    """Gaussian noise indexed by absolute position: the same positions always get the same noise.

    Used per mel frame for the flow's starting noise and per sample for the vocoder's source,
    so that overlapping windows see identical noise where they overlap.
    """

    def __init__(self, seed: int, channels: int, block: int) -> None:
        self.seed, self.channels, self.BLOCK = seed, channels, block
        self.blocks: dict[int, np.ndarray] = {}

    def _block(self, index: int) -> np.ndarray:
        if index not in self.blocks:
            gen = torch.Generator().manual_seed((self.seed * 1_000_003 + index) % 2**63)
            self.blocks[index] = torch.randn(self.channels, self.BLOCK, generator=gen).numpy()
        return self.blocks[index]

    def frames(self, start: int, stop: int) -> np.ndarray:
        """Noise (channels, stop - start), float32, for positions [start, stop); negative ones
        are the voice prompt's."""
        first, last = start // self.BLOCK, (stop - 1) // self.BLOCK
        joined = np.concatenate([self._block(i) for i in range(first, last + 1)], axis=1)
        offset = start - first * self.BLOCK
        return joined[:, offset : offset + stop - start]

    def forget_before(self, frame: int) -> None:
        for index in [i for i in self.blocks if 0 <= i < frame // self.BLOCK - 1]:
            del self.blocks[index]


class SineSource:
    """HiFT's neural-source-filter excitation with a phase that runs on across windows.

    Same formula as upstream ``SineGen`` + ``SourceModuleHnNSF`` (harmonics of F0, voiced/unvoiced
    noise, linear merge, tanh; computed for a batch by :func:`.vocoder.excitation`), except that
    the fundamental's phase at a window's first sample is the phase the previous window had
    reached there, so windows agree where they overlap. That phase stays on the device (the
    previous window's cycle count, indexed there): it is never read back. This object holds the
    host inputs and that state; used by the runner's thread only (a stream has one window in
    flight at a time).
    """

    def __init__(self, hift: HiFTGenerator, seed: int) -> None:
        self.harmonics = hift.m_source.l_sin_gen.harmonic_num + 1
        generator = torch.Generator().manual_seed(seed + 7)
        phases = torch.rand(self.harmonics, 1, generator=generator) * 2 * math.pi - math.pi
        phases[0] = 0.0
        self.phases = phases.numpy()
        self.noise = PositionalNoise(seed + 11, self.harmonics, 8192)
        self.cycles: torch.Tensor | None = None  # fundamental cycles of the last window, float64
        self.cycles_start = 0

    def host_inputs(self, start_sample: int, samples: int) -> np.ndarray:
        """What the device needs for samples [start, start + samples), from the host:
        (harmonics, 1 + samples) float32, the harmonics' phases then their noise."""
        noise = self.noise.frames(start_sample, start_sample + samples)
        self.noise.forget_before(start_sample)
        return np.concatenate([self.phases, noise], axis=1)

    def phase_at(self, sample: int) -> torch.Tensor | None:
        """The fundamental's cycle count reached just before ``sample`` (a device scalar), None
        at the stream's start."""
        if self.cycles is None or sample <= self.cycles_start:
            return None
        return self.cycles[min(sample - self.cycles_start, self.cycles.numel()) - 1]

    def remember(self, cycles: torch.Tensor, start_sample: int) -> None:
        """The cycles (float64, on the device) of the window that starts at ``start_sample``."""
        self.cycles, self.cycles_start = cycles, start_sample
