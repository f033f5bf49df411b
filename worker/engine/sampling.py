"""Next-token sampling for a batch of T3 sequences, each with its own settings and generator.

The processors and their order are upstream ``T3.inference``'s: repetition penalty, temperature,
(Turbo's) top_k, min_p, top_p, then a draw. Every row has its own values, so one call samples for
every sequence in a step. The draw is an inverse-CDF lookup of one uniform number per row, taken
from the request's own CPU ``torch.Generator``: a seed reproduces a request whatever else shares
the batch, and no device generator or per-row kernel launch is needed.
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
    any_top_p: bool
    all_greedy: bool

    @classmethod
    def of(cls, configs: Sequence[SamplingConfig], device: torch.device) -> BatchSampling:
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
            any_top_p=any(c.top_p < 1.0 for c in configs),
            all_greedy=all(c.greedy for c in configs),
        )


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor
) -> torch.Tensor:
    """Divide positive (multiply negative) logits of already generated tokens by the row's
    ``penalty``; ``seen`` is a (rows, vocab) mask of the tokens each row has generated."""
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def sample(
    logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling, uniforms: torch.Tensor
) -> torch.Tensor:
    """One token per row of ``logits`` (rows, vocab) -> (rows,) long; ``uniforms`` (rows,) in
    [0, 1) are the rows' draws (ignored for greedy rows)."""
    logits = apply_repetition_penalty(logits.float(), seen, rows.penalty)
    best = logits.argmax(dim=-1)
    if rows.all_greedy:
        return best
    logits = logits / rows.temperature
    if rows.any_top_k:
        logits = _top_k(logits, rows.top_k)
    probs = torch.softmax(logits, dim=-1)
    probs = probs.masked_fill(probs < probs.max(dim=-1, keepdim=True).values * rows.min_p, 0.0)
    if rows.any_top_p:
        probs = _top_p(probs, rows.top_p)
    cumulative = probs.cumsum(dim=-1)
    targets = uniforms[:, None].to(cumulative) * cumulative[:, -1:]
    drawn = torch.searchsorted(cumulative, targets, right=True)[:, 0]
    drawn = drawn.clamp_(max=logits.shape[-1] - 1)
    return torch.where(rows.greedy, best, drawn)


def _top_k(logits: torch.Tensor, top_k: torch.Tensor) -> torch.Tensor:
    vocab = logits.shape[-1]
    k = torch.where((top_k > 0) & (top_k < vocab), top_k, vocab)
    kth = logits.sort(dim=-1, descending=True).values.gather(1, (k - 1)[:, None])
    return logits.masked_fill(logits < kth, -float("inf"))


def _top_p(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches the row's ``top_p``."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    total = sorted_probs.sum(dim=-1, keepdim=True)
    before = (sorted_probs.cumsum(dim=-1) - sorted_probs) / total  # mass of the more likely ones
    drop = before >= top_p
    drop[:, 0] = False  # the most likely token stays, however small top_p is
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


# Upstream generate() defaults per variant: (top_p, top_k, min_p, repetition_penalty).
VARIANT_SAMPLING: dict[Variant, tuple[float, int, float, float]] = {
    Variant.ENGLISH: (1.0, 0, 0.05, 1.2),
    Variant.TURBO: (0.95, 1000, 0.0, 1.2),
    Variant.MULTILINGUAL: (1.0, 0, 0.05, 2.0),
}


def sampling_config(variant: Variant, params: SynthesisParams) -> SamplingConfig:
    """The request's sampling settings, the variant's upstream defaults where it gave none."""
    top_p, top_k, min_p, penalty = VARIANT_SAMPLING[variant]
    return SamplingConfig(
        temperature=params.temperature,
        top_p=top_p if params.top_p is None else params.top_p,
        top_k=top_k if params.top_k is None else params.top_k,
        min_p=min_p if params.min_p is None else params.min_p,
        repetition_penalty=penalty
        if params.repetition_penalty is None
        else params.repetition_penalty,
    )
