"""Where each slot's speech is in its text, read from T3's own attention inside the decode step.

Some of T3's attention heads align text and speech: upstream's (0.1.7) alignment analyzer read
(layer, head) = (12, 15), (13, 11), (9, 2) of the Llama models, averaged their attention and
took its argmax over the text tokens as "the approximate position in the text". Upstream got
those maps by switching the whole model to eager attention with ``output_attentions`` (every
head of every layer, copied to the CPU each step). Here only the chosen heads' weights are
computed, ``softmax(q . k * scale)`` of the conditional row over the positions it may attend
to, beside the unchanged SDPA of every head, and reduced on the device to one number per slot:
the argmax of their mean over the slot's text tokens, relative to its first text token. It
travels back in the step's one read, next to the token. Static shapes, no host value read, so
the step stays capturable.

Turbo (GPT-2 medium) reads one head, layer 4 head 6 (0-based over ``transformer.h``), from an
open upstream pull request (resemble-ai/chatterbox#563, "feat(turbo): expose optional alignment
from existing generation", Sept 2026), which chose it on real Turbo weights and checked it by
ear; it is not in a release. That pull request takes the softmax over the text keys only; here
it is over every attended key, but the argmax over the text is the same for one head (a softmax
keeps the order of its scores). Nano (GPT-2 small) has no published head: estimated.
"""

from __future__ import annotations

import torch

from common.variants import Variant

from .staging import Column

Head = tuple[int, int]  # (layer, head)
LLAMA_ALIGNMENT_HEADS: tuple[Head, ...] = ((12, 15), (13, 11), (9, 2))  # upstream 0.1.7
TURBO_ALIGNMENT_HEADS: tuple[Head, ...] = ((4, 6),)  # resemble-ai/chatterbox#563 (open)
NO_POSITION = -1  # a slot without a reading (no heads, or not sampled)


def default_alignment_heads(layers: int, heads: int, variant: Variant) -> tuple[Head, ...]:
    """The published heads of ``variant``'s T3 (Llama: upstream's; Turbo: #563's), if the model
    has those layers and heads; none (timings are then estimated) for Nano, which has no
    published head, and for reduced models without them."""
    chosen = {Variant.TURBO: TURBO_ALIGNMENT_HEADS, Variant.NANO: ()}.get(
        variant, LLAMA_ALIGNMENT_HEADS
    )
    if any(layer >= layers or head >= heads for layer, head in chosen):
        return ()
    return chosen


class AlignmentProbe:
    """Collects the chosen heads' attention during one decode step (made per step)."""

    def __init__(self, heads: tuple[Head, ...], rows_per_slot: int) -> None:
        self.heads = heads
        self.layers = {layer for layer, _ in heads}
        self.per = rows_per_slot
        self.total: torch.Tensor | None = None  # (slots, length): the heads' summed weights

    def observe(
        self, layer: int, query: torch.Tensor, key: torch.Tensor, mask: torch.Tensor | None,
        scale: float,
    ) -> None:  # fmt: skip
        """``query`` (rows, heads, 1, dim) and ``key`` (rows, heads, length, dim), the keys
        already repeated for grouped heads; ``mask`` (rows, 1, 1, length) as the step's SDPA."""
        if layer not in self.layers:
            return
        for head in (h for at, h in self.heads if at == layer):
            q = query[:: self.per, head, 0].float()  # the conditional row of each slot
            k = key[:: self.per, head].float()
            scores = torch.einsum("sd,sld->sl", q, k) * scale
            if mask is not None:
                scores = scores.masked_fill(~mask[:: self.per, 0, 0], -float("inf"))
            weights = scores.softmax(dim=-1)
            self.total = weights if self.total is None else self.total + weights

    def positions(self, table: torch.Tensor) -> torch.Tensor:
        """Each slot's text position (slots,): the argmax of the heads' weights over its text
        tokens (staged as TEXT_START, TEXT_LENGTH), counted from its first text token."""
        slots = table.shape[0]
        if self.total is None:
            return torch.full((slots,), NO_POSITION, dtype=torch.long, device=table.device)
        start = table[:, Column.TEXT_START].long()[:, None]
        stop = start + table[:, Column.TEXT_LENGTH].long()[:, None]
        index = torch.arange(self.total.shape[-1], device=table.device)[None, :]
        inside = (index >= start) & (index < stop)
        weights = torch.where(inside, self.total, -1.0)
        return weights.argmax(dim=-1) - start[:, 0]
