"""S3Gen's flow for a batch of windows: upstream's encoder and estimator, called block by block.

Upstream builds every attention mask with ``add_optional_chunk_mask``, which ends in a check
that reads a value back to the host (``.item()``): twice in the encoder and once per decoder
block per estimator call, 142 times a batch at full size with 10 Euler steps, each a
host-device sync on a GPU. With ``static_chunk_size == 0`` and no dynamic chunks (every
checkpoint upstream ships) that function returns the padding mask itself, and its check could
only fire on a row with no valid frame, which a window never has. So the padding masks are used
as they are, and the decoder's attention biases are built once per batch (they do not change
across blocks or steps) and handed to its blocks, called here the way
``ConditionalDecoder.forward`` calls them. A checkpoint configured for chunked attention is
refused (:func:`check_full_context`) rather than decoded with the wrong masks.

- **Encoder** (:func:`encode`): ``UpsampleConformerEncoder.forward`` with one addition: the
  padding is zeroed before the pre-lookahead convolution, which looks three tokens ahead.
  Unpadded, the tail of a window sees zeros there (the convolution's own padding); padded, it
  would see the padding's embeddings, and through attention that would reach the whole window.
  With the zeroing a window decodes alike in any batch.
- **Flow** (:func:`solve`): upstream's ``solve_euler`` (10 steps, CFG as a batch of two) or
  Turbo's 2-step meanflow ``basic_euler``, each window's prompt mel as its condition and its own
  starting noise.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import cast

import torch
from chatterbox.models.s3gen.decoder import ConditionalDecoder
from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec
from chatterbox.models.s3gen.utils.mask import make_pad_mask

from ..errors import InvalidCheckpointError


def check_full_context(flow: CausalMaskedDiffWithXvec) -> None:
    """Refuse a flow whose attention is chunked: its masks are not the padding masks."""
    encoder, estimator = flow.encoder, flow.decoder.estimator
    chunked = {
        "encoder.static_chunk_size": encoder.static_chunk_size,
        "encoder.use_dynamic_chunk": encoder.use_dynamic_chunk,
        "decoder.estimator.static_chunk_size": estimator.static_chunk_size,
    }
    if any(chunked.values()):
        raise InvalidCheckpointError(
            f"this S3Gen is configured for chunked attention ({chunked}); the engine decodes "
            "with full-context attention only, as every checkpoint upstream ships"
        )


def encode(
    flow: CausalMaskedDiffWithXvec, embeds: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """The encoder's output (batch, frames, 512) for token embeddings (batch, tokens, 512)."""
    encoder = flow.encoder
    masks = ~make_pad_mask(lengths, embeds.shape[1]).unsqueeze(1)
    xs, pos_emb, masks = encoder.embed(embeds, masks)
    xs = xs * masks.transpose(1, 2).to(xs.dtype)
    xs = encoder.pre_lookahead_layer(xs)
    xs = encoder.forward_layers(xs, masks, pos_emb, masks)
    xs, lengths = encoder.up_layer(xs.transpose(1, 2).contiguous(), lengths)
    xs = xs.transpose(1, 2).contiguous()
    masks = ~make_pad_mask(lengths, xs.shape[1]).unsqueeze(1)
    xs, pos_emb, masks = encoder.up_embed(xs, masks)
    xs = encoder.forward_up_layers(xs, masks, pos_emb, masks)
    if encoder.normalize_before:
        xs = encoder.after_norm(xs)
    return xs


@dataclass(frozen=True)
class Levels:
    """The decoder's masks (batch, 1, frames at that level), one per U-Net level, and their
    attention biases (0 where valid, -1e10 in the padding, as upstream's ``mask_to_bias``)."""

    masks: list[torch.Tensor]
    biases: list[torch.Tensor]

    @classmethod
    def of(cls, mask: torch.Tensor, depth: int) -> Levels:
        masks = [mask]
        for _ in range(depth - 1):
            masks.append(masks[-1][:, :, ::2])
        return cls(masks, [(1.0 - (m != 0).to(m.dtype)) * -1.0e10 for m in masks])


def estimate(
    estimator: ConditionalDecoder, x: torch.Tensor, levels: Levels, mu: torch.Tensor,
    t: torch.Tensor, spks: torch.Tensor, cond: torch.Tensor, r: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """``ConditionalDecoder.forward`` with the masks and biases of ``levels``."""
    t = estimator.time_mlp(estimator.time_embeddings(t).to(t.dtype))
    if estimator.meanflow:
        r = estimator.time_mlp(estimator.time_embeddings(r).to(t.dtype))
        t = estimator.time_embed_mixer(torch.cat([t, r], dim=1))
    frames = x.shape[-1]
    x = torch.cat([x, mu, spks[:, :, None].expand(-1, -1, frames), cond], dim=1)
    skips = []
    for level, (resnet, blocks, downsample) in enumerate(estimator.down_blocks):
        x = _attend(resnet(x, levels.masks[level], t), blocks, levels.biases[level], t)
        skips.append(x)
        x = downsample(x * levels.masks[level])
    deepest = len(estimator.down_blocks) - 1
    for resnet, blocks in estimator.mid_blocks:
        x = _attend(resnet(x, levels.masks[deepest], t), blocks, levels.biases[deepest], t)
    for level, (resnet, blocks, upsample) in zip(
        range(deepest, -1, -1), estimator.up_blocks, strict=True
    ):
        skip = skips.pop()
        x = torch.cat([x[:, :, : skip.shape[-1]], skip], dim=1)
        x = _attend(resnet(x, levels.masks[level], t), blocks, levels.biases[level], t)
        x = upsample(x * levels.masks[level])
    mask = levels.masks[0]
    x = estimator.final_block(x, mask)
    return estimator.final_proj(x * mask) * mask


def _attend(
    x: torch.Tensor, blocks: torch.nn.ModuleList, bias: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """A level's transformer blocks over (batch, channels, frames)."""
    x = x.transpose(1, 2).contiguous()
    for block in blocks:
        x = block(hidden_states=x, attention_mask=bias, timestep=t)
    return x.transpose(1, 2).contiguous()


def solve(
    flow: CausalMaskedDiffWithXvec, z: torch.Tensor, mu: torch.Tensor, mask: torch.Tensor,
    cond: torch.Tensor, spks: torch.Tensor, steps: int, meanflow: bool,
) -> torch.Tensor:  # fmt: skip
    """The mel (batch, 80, frames) from starting noise ``z``: upstream's Euler solvers."""
    decoder = flow.decoder
    estimator = cast(ConditionalDecoder, decoder.estimator)
    levels = Levels.of(mask, len(estimator.down_blocks))
    t_span = torch.linspace(0, 1, steps + 1, device=mu.device, dtype=mu.dtype)
    x = z
    if meanflow:
        for t, r in itertools.pairwise(t_span):
            velocity = estimate(estimator, x, levels, mu, t[None], spks, cond, r[None])
            x = x + (r[None] - t[None]) * velocity
        return x
    # Classifier-free guidance as a batch of two: the second half without mu, speaker or prompt.
    t_span = 1 - torch.cos(t_span * 0.5 * math.pi)
    batch = z.shape[0]
    doubled = Levels(
        [m.repeat(2, 1, 1) for m in levels.masks], [b.repeat(2, 1, 1) for b in levels.biases]
    )
    mu_in, spks_in, cond_in = (torch.cat([v, torch.zeros_like(v)]) for v in (mu, spks, cond))
    rate = decoder.inference_cfg_rate
    for t, r in itertools.pairwise(t_span):
        both = estimate(
            estimator, x.repeat(2, 1, 1), doubled, mu_in, t.expand(2 * batch), spks_in, cond_in
        )
        guided, unguided = torch.split(both, [batch, batch], dim=0)
        x = x + (r[None] - t[None]) * ((1.0 + rate) * guided - rate * unguided)
    return x
