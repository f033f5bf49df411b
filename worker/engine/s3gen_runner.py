"""The S3Gen model runner: decodes the windows of many streams in one batch.

Windows of different voices and lengths are padded to the longest and masked, as upstream's
``flow.inference`` does for a batch:

- **Encoder**: upstream's conformer layers, run as ``UpsampleConformerEncoder.forward`` does,
  with one addition: the padding is zeroed before the pre-lookahead convolution, which looks
  three tokens ahead. Unpadded, the tail of a window sees zeros there (the convolution's own
  padding); padded, it would see the padding's embeddings, and through attention that would
  reach the whole window. With the zeroing a window decodes alike in any batch.
- **Flow**: upstream's ``solve_euler`` (10 steps, CFG as a batch of two) or Turbo's 2-step
  meanflow, with each window's prompt mel as its condition and its own starting noise.
- **Vocoder**: HiFT's convolutions see past a window's end; each window is vocoded followed by
  ``VOCODER_PAD_FRAMES`` frames of silence, alone or in a batch, so whatever follows in the
  batch is out of their reach (measured: 12 frames leave differences of ~1e-7). The source
  excitation is each stream's own (:class:`SineSource`), phase-continuous across its windows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from chatterbox.models.s3gen.utils.mask import add_optional_chunk_mask, make_pad_mask

from .loading import LoadedModel
from .s3gen_noise import SineSource

MEL_PER_TOKEN = 2
SAMPLES_PER_MEL = 480
VOCODER_PAD_FRAMES = 12


@dataclass(frozen=True)
class WindowInputs:
    """Everything the batched decoder needs for one window (tensors on the model's device)."""

    tokens: torch.Tensor  # (prompt + window,) long: the voice's prompt tokens, then the window's
    prompt_feat: torch.Tensor  # (prompt frames, 80): the voice's mel
    speaker: torch.Tensor  # (80,): the voice's projected speaker embedding
    noise: torch.Tensor  # (80, frames): the starting noise, prompt frames first
    emit_frames: int  # mel frames whose audio is wanted (the first ones after the prompt)
    start_sample: int  # the window's first sample in the stream
    source: SineSource  # the stream's vocoder excitation


class S3GenRunner:
    def __init__(self, model: LoadedModel) -> None:
        self.s3gen = model.s3gen
        self.flow = model.s3gen.flow
        self.hift = model.s3gen.mel2wav
        self.device = model.device
        self.meanflow = bool(model.s3gen.meanflow)
        self.timesteps = 2 if self.meanflow else 10

    @torch.inference_mode()
    def decode(self, windows: list[WindowInputs]) -> list[np.ndarray]:
        """The audio (float32, ``emit_frames * 480`` samples) of each window."""
        mels = self._mels(windows)
        return self._vocode(windows, mels)

    # --- flow -----------------------------------------------------------------------------------

    def _mels(self, windows: list[WindowInputs]) -> list[torch.Tensor]:
        """Each window's mel (80, frames after its prompt), its lookahead frames included."""
        lengths = torch.tensor([len(w.tokens) for w in windows], device=self.device)
        tokens = torch.nn.utils.rnn.pad_sequence([w.tokens for w in windows], batch_first=True)
        valid = ~make_pad_mask(lengths, tokens.shape[1])
        flow = self.flow
        embeds = flow.input_embedding(tokens) * valid[..., None].to(flow.input_embedding.weight)
        hidden, _ = self._encode(embeds, lengths)
        mu = flow.encoder_proj(hidden).transpose(1, 2)  # (batch, 80, frames)
        frames = [MEL_PER_TOKEN * len(w.tokens) for w in windows]
        cond = torch.zeros_like(mu)
        noise = torch.zeros_like(mu)
        mask = torch.zeros(len(windows), 1, mu.shape[2], device=self.device, dtype=mu.dtype)
        for i, window in enumerate(windows):
            cond[i, :, : window.prompt_feat.shape[0]] = window.prompt_feat.T
            noise[i, :, : frames[i]] = window.noise
            mask[i, :, : frames[i]] = 1.0
        speakers = torch.stack([w.speaker for w in windows])
        mel = self._solve(noise, mu, mask, cond, speakers)
        return [mel[i, :, w.prompt_feat.shape[0] : frames[i]] for i, w in enumerate(windows)]

    def _encode(
        self, embeds: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``UpsampleConformerEncoder.forward`` (full-context attention), padding zeroed before
        the lookahead convolution."""
        encoder = self.flow.encoder
        masks = ~make_pad_mask(lengths, embeds.shape[1]).unsqueeze(1)
        xs, pos_emb, masks = encoder.embed(embeds, masks)
        xs = xs * masks.transpose(1, 2).to(xs.dtype)
        chunks = add_optional_chunk_mask(
            xs, masks, encoder.use_dynamic_chunk, encoder.use_dynamic_left_chunk, 0,
            encoder.static_chunk_size, -1,
        )  # fmt: skip
        xs = encoder.pre_lookahead_layer(xs)
        xs = encoder.forward_layers(xs, chunks, pos_emb, masks)
        xs, lengths = encoder.up_layer(xs.transpose(1, 2).contiguous(), lengths)
        xs = xs.transpose(1, 2).contiguous()
        masks = ~make_pad_mask(lengths, xs.shape[1]).unsqueeze(1)
        xs, pos_emb, masks = encoder.up_embed(xs, masks)
        chunks = add_optional_chunk_mask(
            xs, masks, encoder.use_dynamic_chunk, encoder.use_dynamic_left_chunk, 0,
            encoder.static_chunk_size * encoder.up_layer.stride, -1,
        )  # fmt: skip
        xs = encoder.forward_up_layers(xs, chunks, pos_emb, masks)
        if encoder.normalize_before:
            xs = encoder.after_norm(xs)
        return xs, masks

    def _solve(
        self, z: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor, cond: torch.Tensor,
        speakers: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        decoder = self.flow.decoder
        t_span = torch.linspace(0, 1, self.timesteps + 1, device=mu.device, dtype=mu.dtype)
        if not self.meanflow:
            t_span = 1 - torch.cos(t_span * 0.5 * math.pi)
            return decoder.solve_euler(z, t_span=t_span, mu=mu, mask=mask, spks=speakers, cond=cond)
        x = z
        for t, r in itertools.pairwise(t_span):
            velocity = decoder.estimator.forward(
                x, mask=mask, mu=mu, t=t[None], spks=speakers, cond=cond, r=r[None]
            )
            x = x + (r - t) * velocity
        return x

    # --- vocoder --------------------------------------------------------------------------------

    def _vocode(self, windows: list[WindowInputs], mels: list[torch.Tensor]) -> list[np.ndarray]:
        hift = self.hift
        dtype = next(hift.parameters()).dtype
        padded = [F.pad(mel, (0, VOCODER_PAD_FRAMES)) for mel in mels]
        longest = max(m.shape[1] for m in padded)
        batch = torch.stack([F.pad(m, (0, longest - m.shape[1])) for m in padded]).to(dtype)
        f0 = hift.f0_upsamp(hift.f0_predictor(batch)[:, None])  # (batch, 1, samples)
        excitation = torch.zeros_like(f0)
        for i, window in enumerate(windows):
            samples = padded[i].shape[1] * SAMPLES_PER_MEL
            excitation[i, :, :samples] = window.source(
                f0[i : i + 1, :, :samples], window.start_sample
            )[0]
        wav = hift.decode(x=batch, s=excitation)
        return [
            wav[i, : w.emit_frames * SAMPLES_PER_MEL].float().cpu().numpy()
            for i, w in enumerate(windows)
        ]
