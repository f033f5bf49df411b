"""HiFT for a batch of windows on fixed shapes: its source excitation and its STFTs as device
work only, capturable and compilable, in float32 whatever S3Gen's dtype.

- **Excitation**: upstream's ``SineGen`` + ``SourceModuleHnNSF`` (harmonics of F0,
  voiced/unvoiced noise, linear merge, tanh), batched, with each row's fundamental starting at
  the phase its stream reached (``phase0``, cycles, float64) and its harmonics' phase offsets
  and noise from the host (:class:`~.noise.SineSource`).
- **STFT and inverse**: HiFT's are 16-point (hop 4, periodic Hann): here a strided convolution
  with the DFT basis and a transposed one with the inverse basis, divided by the window's
  overlap envelope, as ``torch.stft``/``torch.istft`` (center, reflect padding, one-sided)
  compute them. ``torch.istft`` checks the envelope on the host (``aten.equal``: a sync per
  call on a GPU, which a CUDA graph cannot hold) and both go through complex tensors; the
  convolutions need neither. Equal to torch's to ~1e-6 (tests/engine/test_s3gen_static.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from chatterbox.models.s3gen.hifigan import HiFTGenerator


class Stft:
    """HiFT's ``_stft`` and ``_istft`` as convolutions (real arithmetic, float32)."""

    def __init__(self, hift: HiFTGenerator) -> None:
        self.n_fft = int(hift.istft_params["n_fft"])
        self.hop = int(hift.istft_params["hop_len"])
        window = hift.stft_window.detach().float()
        n, bins = torch.arange(self.n_fft).double(), self.n_fft // 2 + 1
        angle = 2 * math.pi * torch.arange(bins).double()[:, None] * n[None, :] / self.n_fft
        forward = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window.double()
        scale = torch.full((bins, 1), 2.0, dtype=torch.float64)
        scale[0] = scale[-1] = 1.0  # the DC and Nyquist bins appear once in a real signal
        inverse = torch.cat([torch.cos(angle), -torch.sin(angle)]) * scale.repeat(2, 1) / self.n_fft
        device = window.device
        self.forward_basis = forward.float()[:, None, :].to(device)  # (2 bins, 1, n_fft)
        self.inverse_basis = (inverse * window.double()).float()[:, None, :].to(device)
        self.window_squared = (window**2)[None, None, :]

    def stft(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, 2 * bins, frames): real parts, then imaginary."""
        padded = F.pad(x[:, None, :], (self.n_fft // 2, self.n_fft // 2), mode="reflect")
        return F.conv1d(padded, self.forward_basis, stride=self.hop)

    def istft(self, magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(batch, bins, frames) each -> (batch, hop * (frames - 1)) samples."""
        magnitude = torch.clip(magnitude, max=1e2)
        spectrum = torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)
        frames = spectrum.shape[-1]
        signal = F.conv_transpose1d(spectrum, self.inverse_basis, stride=self.hop)
        ones = torch.ones(1, 1, frames, device=spectrum.device, dtype=spectrum.dtype)
        envelope = F.conv_transpose1d(ones, self.window_squared, stride=self.hop)
        half = self.n_fft // 2
        return (signal / envelope)[:, 0, half : signal.shape[-1] - half]


def plain_int_shapes(hift: HiFTGenerator) -> None:
    """Upstream builds HiFT's source convolutions with numpy integers (``np.cumprod`` of the
    upsampling rates) as their kernel size, stride and padding. Eagerly that changes nothing,
    but ``torch.compile`` treats a numpy integer as a value to read at run time: Dynamo lifts it
    into the graph, and inductor then fails on a stride it cannot know (a data-dependent
    guard). As Python integers (the same values) they are constants of the step."""
    for conv in hift.source_downs:
        for name in ("kernel_size", "stride", "padding"):
            value = getattr(conv, name)
            if isinstance(value, tuple):
                setattr(conv, name, tuple(int(v) for v in value))


def excitation(
    hift: HiFTGenerator, f0: torch.Tensor, phase0: torch.Tensor, host: torch.Tensor,
    samples: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The source (batch, 1, S) for upsampled F0 (batch, 1, S), and each row's fundamental
    cycles (batch, S), float64. ``host``: (batch, harmonics, 1 + S), each row's phase offsets
    then noise; ``samples``: (batch,) the row's own samples (the source is 0 after them)."""
    sine, merge = hift.m_source.l_sin_gen, hift.m_source.l_linear
    harmonics = sine.harmonic_num + 1
    phases, noise = host[:, :, :1], host[:, :, 1:]
    cycles = phase0[:, None] + torch.cumsum(f0[:, 0].double() / sine.sampling_rate, dim=1)
    order = torch.arange(1, harmonics + 1, device=f0.device, dtype=torch.float64)
    theta = 2 * math.pi * torch.remainder(order[None, :, None] * cycles[:, None, :], 1.0)
    waves = sine.sine_amp * torch.sin(theta.float() + phases)  # (batch, harmonics, S)
    voiced = (f0 > sine.voiced_threshold).float()  # (batch, 1, S)
    noise_amp = voiced * sine.noise_std + (1 - voiced) * sine.sine_amp / 3
    source = waves * voiced + noise_amp * noise
    merged = torch.tanh(F.linear(source.transpose(1, 2), merge.weight.float(), merge.bias.float()))
    own = torch.arange(f0.shape[-1], device=f0.device)[None, :] < samples[:, None]
    return merged.transpose(1, 2) * own[:, None, :].float(), cycles


def decode(
    hift: HiFTGenerator, stft: Stft, mel: torch.Tensor, source: torch.Tensor
) -> torch.Tensor:
    """``HiFTGenerator.decode`` with :class:`Stft`: audio (batch, samples) for mel (batch, 80,
    frames) and source (batch, 1, samples). The source's STFT and the inverse run in float32
    (outside any autocast); the convolutions between in S3Gen's dtype."""
    with torch.autocast(mel.device.type, enabled=False):
        spectrum = stft.stft(source[:, 0].float())
    x = hift.conv_pre(mel)
    for i in range(hift.num_upsamples):
        x = hift.ups[i](F.leaky_relu(x, hift.lrelu_slope))
        if i == hift.num_upsamples - 1:
            x = hift.reflection_pad(x)
        x = x + hift.source_resblocks[i](hift.source_downs[i](spectrum))
        kernels = hift.resblocks[i * hift.num_kernels : (i + 1) * hift.num_kernels]
        x = sum(block(x) for block in kernels) / hift.num_kernels
    x = hift.conv_post(F.leaky_relu(x))
    bins = hift.istft_params["n_fft"] // 2 + 1
    with torch.autocast(mel.device.type, enabled=False):
        x = x.float()
        audio = stft.istft(torch.exp(x[:, :bins]), torch.sin(x[:, bins:]))
    return torch.clamp(audio, -hift.audio_limit, hift.audio_limit)
