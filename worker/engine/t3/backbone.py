"""T3's transformer run over a KV cache allocated once: Llama (English, multilingual) and GPT-2
(Turbo), with a position of its own for every row.

Upstream runs the backbone through transformers' ``forward`` with a cache that grows by
concatenation. Here each layer is driven from its upstream submodules (projections, norms, MLP,
rotary embedding) with the same arithmetic, but keys and values are written into a fixed
tensor at each row's own position and attention reads a slice of it, so rows of different
requests and lengths share one call and nothing is copied as sequences come and go.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from transformers import GPT2Model, LlamaModel
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

from .alignment_probe import AlignmentProbe


class KVCache:
    """Keys and values of every row, allocated up front: (layers, rows, heads, context, dim)."""

    def __init__(
        self,
        layers: int,
        rows: int,
        heads: int,
        context: int,
        head_dim: int,
        dtype: torch.dtype,
        device: torch.device,
    ) -> None:
        shape = (layers, rows, heads, context, head_dim)
        # Zeros, not empty(): masked positions are still multiplied by zero weights, and
        # uninitialised memory may hold NaN.
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        self.context = context
        self.rows = rows

    @property
    def bytes(self) -> int:
        return 2 * self.keys.numel() * self.keys.element_size()

    def move_rows(self, sources: torch.Tensor, targets: torch.Tensor) -> None:
        """Copy rows ``sources`` to rows ``targets`` (all read before any is written)."""
        self.keys[:, targets] = self.keys[:, sources]
        self.values[:, targets] = self.values[:, sources]

    def write(
        self, layer: int, rows: slice, positions: torch.Tensor, keys: torch.Tensor,
        values: torch.Tensor,
    ) -> None:  # fmt: skip
        """Store a step's keys and values (batch, heads, q, dim) at ``positions`` (batch, q).

        A prefill fills positions 0 .. q-1 of each row; a decode step (q = 1) one position per
        row, wherever that row is.
        """
        if keys.shape[2] == 1:
            index = torch.arange(rows.start, rows.stop, device=keys.device)
            self.keys[layer, index, :, positions[:, 0]] = keys[:, :, 0]
            self.values[layer, index, :, positions[:, 0]] = values[:, :, 0]
        else:
            length = keys.shape[2]
            self.keys[layer, rows, :, :length] = keys
            self.values[layer, rows, :, :length] = values

    def read(self, layer: int, rows: slice, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.keys[layer, rows, :, :length], self.values[layer, rows, :, :length]


class Attention:
    """Where a step's queries may look: the first ``length`` positions, under ``mask``
    (batch, 1, q, length; None: all of them, or causal for a prefill of one sequence).
    ``probe`` (a decode step's, or None) is shown each layer's queries and keys."""

    def __init__(
        self, length: int, mask: torch.Tensor | None, causal: bool,
        probe: AlignmentProbe | None = None,
    ) -> None:  # fmt: skip
        self.length, self.mask, self.causal, self.probe = length, mask, causal, probe

    def observe(self, layer: int, query: torch.Tensor, key: torch.Tensor, scale: float) -> None:
        if self.probe is not None:
            self.probe.observe(layer, query, key, self.mask, scale)

    def __call__(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, scale: float
    ) -> torch.Tensor:
        return F.scaled_dot_product_attention(
            query, key, value, attn_mask=self.mask, is_causal=self.causal, scale=scale
        )


class Backbone(Protocol):
    layers: int
    kv_heads: int
    head_dim: int

    def __call__(
        self,
        embeds: torch.Tensor,
        rows: slice,
        positions: torch.Tensor,
        cache: KVCache,
        attention: Attention,
    ) -> torch.Tensor:
        """Hidden states (batch, q, dim) after the final norm, for ``embeds`` (batch, q, dim)
        at ``positions`` (batch, q) of cache rows ``rows``."""
        ...


class LlamaBackbone:
    """Upstream's ``LlamaModel`` (T3 of English and multilingual) over a :class:`KVCache`."""

    def __init__(self, model: LlamaModel) -> None:
        config: Any = model.config
        self.model: Any = model  # transformers' modules are typed loosely: used as documented
        self.layers = int(config.num_hidden_layers)
        self.kv_heads = int(config.num_key_value_heads)
        heads = int(config.num_attention_heads)
        self.head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        self.groups = heads // self.kv_heads

    def __call__(
        self,
        embeds: torch.Tensor,
        rows: slice,
        positions: torch.Tensor,
        cache: KVCache,
        attention: Attention,
    ) -> torch.Tensor:
        batch, steps, _ = embeds.shape
        shape = (batch, steps, -1, self.head_dim)
        hidden = embeds
        cos, sin = self.model.rotary_emb(hidden, positions)
        for index, layer in enumerate(self.model.layers[: self.layers]):
            attn = layer.self_attn
            x = layer.input_layernorm(hidden)
            query = attn.q_proj(x).view(shape).transpose(1, 2)
            key = attn.k_proj(x).view(shape).transpose(1, 2)
            value = attn.v_proj(x).view(shape).transpose(1, 2)
            query, key = apply_rotary_pos_emb(query, key, cos, sin)
            cache.write(index, rows, positions, key, value)
            key, value = cache.read(index, rows, attention.length)
            if self.groups > 1:
                key = key.repeat_interleave(self.groups, dim=1)
                value = value.repeat_interleave(self.groups, dim=1)
            attention.observe(index, query, key, attn.scaling)
            out = attention(query, key, value, attn.scaling)
            hidden = hidden + attn.o_proj(out.transpose(1, 2).reshape(batch, steps, -1))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        normed: torch.Tensor = self.model.norm(hidden)
        return normed


class GPT2Backbone:
    """Upstream's ``GPT2Model`` (T3 of Turbo) over a :class:`KVCache`."""

    def __init__(self, model: GPT2Model) -> None:
        config: Any = model.config
        if not config.scale_attn_weights or config.scale_attn_by_inverse_layer_idx:
            raise ValueError("only GPT-2's standard attention scaling is supported")
        self.model: Any = model
        self.layers = int(config.n_layer)
        self.kv_heads = int(config.n_head)
        self.head_dim = int(config.n_embd) // self.kv_heads

    def __call__(
        self,
        embeds: torch.Tensor,
        rows: slice,
        positions: torch.Tensor,
        cache: KVCache,
        attention: Attention,
    ) -> torch.Tensor:
        batch, steps, width = embeds.shape
        shape = (batch, steps, -1, self.head_dim)
        hidden = self.model.drop(embeds + self.model.wpe(positions))
        scale = self.head_dim**-0.5
        for index, block in enumerate(self.model.h):
            attn = block.attn
            query, key, value = attn.c_attn(block.ln_1(hidden)).split(width, dim=2)
            query = query.view(shape).transpose(1, 2)
            key = key.view(shape).transpose(1, 2)
            value = value.view(shape).transpose(1, 2)
            cache.write(index, rows, positions, key, value)
            key, value = cache.read(index, rows, attention.length)
            attention.observe(index, query, key, scale)
            out = attention(query, key, value, scale)
            out = attn.resid_dropout(attn.c_proj(out.transpose(1, 2).reshape(batch, steps, -1)))
            hidden = hidden + out
            hidden = hidden + block.mlp(block.ln_2(hidden))
        normed: torch.Tensor = self.model.ln_f(hidden)
        return normed


def backbone_for(model: LlamaModel | GPT2Model) -> LlamaBackbone | GPT2Backbone:
    if isinstance(model, GPT2Model):
        return GPT2Backbone(model)
    return LlamaBackbone(model)
