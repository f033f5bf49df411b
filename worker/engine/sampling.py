"""Next-token sampling for a batch of T3 sequences, each with its own settings and generator.

The processors and their order are upstream's, per model. ``T3.inference`` (English and
multilingual): repetition penalty, temperature, min_p, top_p. ``T3.inference_turbo`` (Turbo and
Nano): temperature, top_k, top_p, then the repetition penalty, so the nucleus is chosen before
the penalty reshapes it. A request may ask English for a top_k, which upstream lacks: it runs
after the temperature. Every row has its own values, so one call samples for every sequence in a
step; a batch holds one model's sequences, so one order. The draw is an inverse-CDF lookup of one
uniform number per row, taken from the request's own CPU ``torch.Generator``: a seed reproduces a
request whatever else shares the batch, and no device generator or per-row kernel launch is
needed. Whatever the settings, the most likely token (after the penalty, where it comes first)
is never filtered out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from common.params import SynthesisParams
from common.variants import Variant

GREEDY_TEMPERATURE = 1e-4  # at or below: take the most likely token


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float
    top_p: float
    min_p: float
    repetition_penalty: float
    top_k: int = 0
    penalty_last: bool = False  # Turbo's order: the penalty after temperature, top_k and top_p

    @property
    def greedy(self) -> bool:
        return self.temperature <= GREEDY_TEMPERATURE


@dataclass(frozen=True)
class BatchSampling:
    """The settings of the rows of one batch, as (rows, 1) tensors on the device."""

    temperature: torch.Tensor
    top_k: torch.Tensor  # (rows,) long; 0 or >= vocab: no top-k
    min_p: torch.Tensor
    top_p: torch.Tensor
    penalty: torch.Tensor
    greedy: torch.Tensor  # (rows,) bool
    any_top_k: bool
    any_min_p: bool
    any_top_p: bool
    penalty_last: bool

    @classmethod
    def of(cls, configs: Sequence[SamplingConfig], device: torch.device) -> BatchSampling:
        orders = {c.penalty_last for c in configs}
        if len(orders) > 1:
            raise ValueError("one batch samples in one model's order (penalty_last differs)")

        def column(values: list[float]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.float32, device=device)[:, None]

        return cls(
            temperature=column([max(c.temperature, GREEDY_TEMPERATURE) for c in configs]),
            top_k=torch.tensor([c.top_k for c in configs], dtype=torch.long, device=device),
            min_p=column([c.min_p for c in configs]),
            top_p=column([c.top_p for c in configs]),
            penalty=column([c.repetition_penalty for c in configs]),
            greedy=torch.tensor([c.greedy for c in configs], dtype=torch.bool, device=device),
            any_top_k=any(c.top_k > 0 for c in configs),
            any_min_p=any(c.min_p > 0.0 for c in configs),
            any_top_p=any(c.top_p < 1.0 for c in configs),
            penalty_last=orders == {True},
        )


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """Divide positive (multiply negative) logits of already generated tokens by the row's
    ``penalty``; ``seen`` is a (rows, vocab) mask of the tokens each row has generated."""
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def processed_logits(logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling) -> torch.Tensor:
    """``logits`` (rows, vocab) after every processor, in the batch's order: filtered tokens
    are ``-inf``. Their softmax is the distribution each row draws from."""
    logits = logits.float()
    if rows.penalty_last:
        logits = _filter(logits / rows.temperature, rows)
        return apply_repetition_penalty(logits, seen, rows.penalty)
    logits = apply_repetition_penalty(logits, seen, rows.penalty) / rows.temperature
    return _filter(logits, rows)


def probabilities(logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling) -> torch.Tensor:
    """Each row's distribution of its next token (rows, vocab), as upstream's processors and
    softmax give it (for a greedy row, that of temperature ``GREEDY_TEMPERATURE``)."""
    return torch.softmax(processed_logits(logits, seen, rows), dim=-1)


def sample(
    logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling, uniforms: torch.Tensor
) -> torch.Tensor:
    """One token per row of ``logits`` (rows, vocab) -> (rows,) long; ``uniforms`` (rows,) in
    [0, 1) are the rows' draws (ignored for greedy rows)."""
    processed = processed_logits(logits, seen, rows)
    best = processed.argmax(dim=-1)
    probs = torch.softmax(processed, dim=-1)
    cumulative = probs.cumsum(dim=-1)
    targets = uniforms[:, None].to(cumulative) * cumulative[:, -1:]
    drawn = torch.searchsorted(cumulative, targets, right=True)[:, 0]
    # A uniform that rounds up to the total would land past the end: take the last kept token.
    last_kept = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    drawn = torch.minimum(drawn, last_kept)
    return torch.where(rows.greedy, best, drawn)


def _filter(logits: torch.Tensor, rows: BatchSampling) -> torch.Tensor:
    """top_k, min_p and top_p, each where some row asks for it (no-ops for the others)."""
    if rows.any_top_k:
        logits = _top_k(logits, rows.top_k)
    if rows.any_min_p:
        probs = torch.softmax(logits, dim=-1)
        low = probs < probs.max(dim=-1, keepdim=True).values * rows.min_p
        logits = logits.masked_fill(low, -float("inf"))
    if rows.any_top_p:
        logits = _top_p(logits, rows.top_p)
    return logits


def _top_k(logits: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    vocab = logits.shape[-1]
    k = torch.where((top_k > 0) & (top_k < vocab), top_k, vocab)
    kth = logits.sort(dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
    return logits.masked_fill(logits < kth, -float("inf"))


def _top_p(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches the row's ``top_p``."""
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    sorted_probs = torch.softmax(sorted_logits, dim=-1)
    before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the more likely ones
    drop = before >= top_p
    drop[:, 0] = False  # the most likely token stays, however small top_p is
    dropped = torch.zeros_like(drop).scatter(-1, order, drop)
    return logits.masked_fill(dropped, -float("inf"))


# Upstream generate() defaults per variant: (top_p, top_k, min_p, repetition_penalty).
# Multilingual's penalty is GitHub main's 1.2 (0.1.7: 2.0). Turbo and Nano have no min_p.
VARIANT_SAMPLING: dict[Variant, tuple[float, int, float, float]] = {
    Variant.ENGLISH: (1.0, 0, 0.05, 1.2),
    Variant.TURBO: (0.95, 1000, 0.0, 1.2),
    Variant.NANO: (0.95, 1000, 0.0, 1.2),
    Variant.MULTILINGUAL: (1.0, 0, 0.05, 1.2),
}


def sampling_config(variant: Variant, params: SynthesisParams) -> SamplingConfig:
    """The request's sampling settings, the variant's upstream defaults where it gave none.
    Turbo and Nano ignore min_p, as upstream's ``generate`` does."""
    top_p, top_k, min_p, penalty = VARIANT_SAMPLING[variant]
    turbo = variant.turbo_family
    return SamplingConfig(
        temperature=params.temperature,
        top_p=top_p if params.top_p is None else params.top_p,
        top_k=top_k if params.top_k is None else params.top_k,
        min_p=min_p if params.min_p is None or turbo else params.min_p,
        repetition_penalty=penalty
        if params.repetition_penalty is None
        else params.repetition_penalty,
        penalty_last=turbo,
    )
