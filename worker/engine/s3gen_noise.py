"""S3Gen's randomness, indexed by absolute position so that overlapping windows agree.

Upstream draws fresh noise on every call and a random source phase per vocoder call, so two
decodes of the same stretch never match and streamed windows would not join. Here the flow's
starting noise is drawn per absolute mel frame and the vocoder source's noise per absolute
sample, in blocks generated from ``(seed, block index)``; the source's fundamental continues its
phase from one window to the next. The same seed gives the same audio.
"""

from __future__ import annotations

import math

import torch
from chatterbox.models.s3gen.hifigan import HiFTGenerator


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
