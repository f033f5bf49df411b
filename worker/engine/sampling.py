"""Next-token sampling for T3: the same processors as upstream, on tensors, with no CPU sync.

Order as in upstream ``T3.inference``: repetition penalty, temperature, (Turbo's top_k), min_p,
top_p, then a
multinomial draw from a per-request ``torch.Generator`` (so ``seed`` reproduces a request even
while other requests share the process).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float
    top_p: float
    min_p: float
    repetition_penalty: float
    top_k: int = 0


def apply_repetition_penalty(
    logits: torch.Tensor, seen: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Divide positive (multiply negative) logits of already generated tokens by ``penalty``.

    ``seen`` is a (1, vocab) boolean mask of tokens generated so far.
    """
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def sample_next(
    logits: torch.Tensor,
    seen: torch.Tensor,
    config: SamplingConfig,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Sample one token per row of ``logits`` (1, vocab) -> (1, 1) long tensor."""
    logits = apply_repetition_penalty(logits.float(), seen, config.repetition_penalty)
    if config.temperature <= 1e-4:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / config.temperature
    if 0 < config.top_k < logits.shape[-1]:
        kth = torch.topk(logits, config.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    probs = torch.softmax(logits, dim=-1)
    if config.min_p > 0.0:
        threshold = probs.max(dim=-1, keepdim=True).values * config.min_p
        probs = probs.masked_fill(probs < threshold, 0.0)
    if config.top_p < 1.0:
        probs = _top_p(probs, config.top_p)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def _top_p(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches ``top_p`` (at least one)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    cumulative = sorted_probs.cumsum(dim=-1) / sorted_probs.sum(dim=-1, keepdim=True)
    drop = cumulative - sorted_probs / sorted_probs.sum(dim=-1, keepdim=True) >= top_p
    sorted_probs = sorted_probs.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)
