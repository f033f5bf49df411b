"""Next-token sampling for a batch of T3 sequences, each with its own settings and generator.

The processors and their order are upstream's, per model. ``T3.inference`` (English and
multilingual): repetition penalty, temperature, min_p, top_p. ``T3.inference_turbo`` (Turbo and
Nano): temperature, top_k, top_p, then the repetition penalty, so the nucleus is chosen before
the penalty reshapes it. A request may ask English for a top_k, which upstream lacks: it runs
after the temperature. Every row has its own values, so one call samples for every sequence in a
step; a batch holds one model's sequences, so one order. The draw is an inverse-CDF lookup of one
uniform number per row, drawn on the host by the scheduler from the request's own seeded
generator and staged with the step: a seed reproduces a request whatever else shares the batch,
and no device generator, per-row kernel launch or host read is needed. Whatever the settings,
the most likely token (after the penalty, where it comes first) is never filtered out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from common.params import SynthesisParams
from common.variants import Variant

# At or below: take the most likely token (after the repetition penalty where it comes first),
# the limit of upstream's sampling as the temperature goes to 0 and what a client asking for 0
# means. Upstream itself differs at 0: ``T3.inference`` (English, multilingual) divides the
# logits by it and its draw then fails on NaN; ``inference_turbo`` skips the temperature warper
# at 0 and so samples at 1.
GREEDY_TEMPERATURE = 1e-4


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
    """The settings of the rows of one batch, as tensors on the device.

    Every filter runs for every row, its neutral value (top_k 0, min_p 0, top_p 1) making it a
    no-op: no branch depends on a row's values. One branch depends on the batch, decided on the
    host: ``ranked``, whether any row asks for top_k or top_p, which need the tokens sorted (on
    a CPU the sort costs several times the rest of sampling); without it min_p alone runs. A
    captured step has a graph for each.
    """

    temperature: torch.Tensor  # (rows, 1)
    top_k: torch.Tensor  # (rows,) long; 0 or >= vocab: no top-k
    min_p: torch.Tensor  # (rows, 1)
    top_p: torch.Tensor  # (rows, 1)
    penalty: torch.Tensor  # (rows, 1)
    greedy: torch.Tensor  # (rows,) bool
    penalty_last: bool  # the model's order (one per batch: one model per engine)
    ranked: bool = True  # some row asks for top_k or top_p (see above)

    @classmethod
    def of(cls, configs: Sequence[SamplingConfig], device: torch.device) -> BatchSampling:
        """From settings on the host (tests; the runner reads them from its staged table)."""
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
            penalty_last=orders == {True},
            ranked=needs_ranking(configs),
        )


def needs_ranking(configs: Sequence[SamplingConfig]) -> bool:
    """Whether any of ``configs`` asks for top_k or top_p (which sort the tokens)."""
    return any(c.top_k > 0 or c.top_p < 1.0 for c in configs)


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
    return _process(logits, seen, rows)


def probabilities(logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling) -> torch.Tensor:
    """Each row's distribution of its next token (rows, vocab), as upstream's processors and
    softmax give it (for a greedy row, that of temperature ``GREEDY_TEMPERATURE``)."""
    return torch.softmax(processed_logits(logits, seen, rows), dim=-1)


def sample(
    logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling, uniforms: torch.Tensor
) -> torch.Tensor:
    """One token per row of ``logits`` (rows, vocab) -> (rows,) long; ``uniforms`` (rows,) in
    [0, 1) are the rows' draws (ignored for greedy rows)."""
    processed = _process(logits, seen, rows)
    best = processed.argmax(dim=-1)
    probs = torch.softmax(processed, dim=-1)
    cumulative = probs.cumsum(dim=-1)
    targets = uniforms[:, None].to(cumulative) * cumulative[:, -1:]
    drawn = torch.searchsorted(cumulative, targets, right=True)[:, 0]
    # A uniform that rounds up to the total would land past the end: take the last kept token.
    last_kept = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    drawn = torch.minimum(drawn, last_kept)
    return torch.where(rows.greedy, best, drawn)


def _process(logits: torch.Tensor, seen: torch.Tensor, rows: BatchSampling) -> torch.Tensor:
    """The processed logits. top_k and top_p keep a prefix of the tokens sorted by likelihood,
    so they share one sort, and min_p runs between them in the tokens' own order: a row whose
    top_k and top_p are neutral is then processed bit for bit alike with or without the sort
    (``ranked``), and a request draws the same token whatever it shares the batch with."""
    logits = logits.float()
    if not rows.penalty_last:
        logits = apply_repetition_penalty(logits, seen, rows.penalty)
    logits = logits / rows.temperature
    order = None
    if rows.ranked:  # top_k, keeping ties with the k-th, as transformers' warper does
        ranked, order = logits.sort(dim=-1, descending=True)
        vocab = logits.shape[-1]
        k = torch.where((rows.top_k > 0) & (rows.top_k < vocab), rows.top_k, vocab)
        logits = logits.masked_fill(logits < ranked.gather(1, (k - 1)[:, None]), -float("inf"))
    probs = torch.softmax(logits, dim=-1)  # min_p: less likely than min_p x the most likely
    logits = logits.masked_fill(probs < probs.max(dim=-1, keepdim=True).values * rows.min_p,
                                -float("inf"))  # fmt: skip
    if order is not None:  # the order still holds: every filtered token was among the last
        logits = _top_p(logits, order, rows.top_p)
    if rows.penalty_last:
        logits = apply_repetition_penalty(logits, seen, rows.penalty)
    return logits


def _top_p(logits: torch.Tensor, order: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches the row's ``top_p`` (all
    of them at 1); the most likely token always stays."""
    ranked = torch.softmax(logits, dim=-1).gather(-1, order)
    before = ranked.cumsum(dim=-1) - ranked  # mass of the more likely ones
    first = torch.arange(logits.shape[-1], device=logits.device) == 0
    drop = (before >= top_p) & (top_p < 1.0) & ~first
    return logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), -float("inf"))


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
