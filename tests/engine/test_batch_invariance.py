"""A sequence's T3 logits alone and in any batch: bit for bit the same in the batch-invariant
mode, within float rounding otherwise.

Sampling has edges (the min_p and top_p cuts, the boundaries of the draw): a difference in the
last bit of one logit there picks another token, and the request then sounds different beside
others than alone. With ``batch_invariant`` equality is exact, not a tolerance: joining together
or apart, another sequence pausing, leaving (its slot refilled by a move), a full batch. Without
it, logits stay within ``ROUNDING`` of alone, so a token differs only where a draw falls that
close to an edge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

from common.params import SynthesisParams
from common.variants import Variant
from tests.support.checkpoints import Checkpoints
from tests.support.t3 import Request, sequence
from worker.engine.model.loading import LoadedModel, load_model
from worker.engine.t3.runner import T3Runner
from worker.engine.t3.scheduler import T3Scheduler

SLOTS = 8
WATCHED = "A second request, running at the same time."
ROUNDING = 1e-5  # measured on the tiny checkpoints without batch invariance: 6e-7


@dataclass
class Other:
    """A sequence beside the watched one: when it joins, how long it runs, when it pauses."""

    join_at: int = 0
    tokens: int = 40
    paused: Callable[[int], bool] = lambda step: False


def watched_logits(
    model: LoadedModel, others: list[Other], join_at: int = 0, invariant: bool = True
) -> tuple[list[int], list[torch.Tensor]]:
    """The watched sequence's tokens, and the conditional logits it has after each step (those
    of its next draw: of all but the first, which come from its prefill)."""
    scheduler = T3Scheduler(SLOTS, 1024, model.t3.hp.stop_speech_token)
    runner = T3Runner(model, SLOTS, 1024, batch_invariant=invariant)
    clock = [0]
    request = Request(WATCHED, SynthesisParams(seed=1, fixed_token_count=50))
    watched = sequence(model, request)
    joins = [(join_at, watched)]
    for i, other in enumerate(others):
        params = SynthesisParams(seed=10 + i, fixed_token_count=other.tokens)
        seq = sequence(model, Request(f"Another voice, number {i}.", params))
        seq.runnable = lambda paused=other.paused: not paused(clock[0])
        joins.append((other.join_at, seq))
    logits: list[torch.Tensor] = []
    while not watched.finished:
        for step, seq in joins:
            if step == clock[0]:
                scheduler.add(seq)
        if not scheduler.idle:
            plan = scheduler.plan()
            scheduler.commit(plan, runner.step(plan))
            slot = next((i for i, s in enumerate(plan.slots) if s.sequence is watched), None)
            if slot is not None and plan.slots[slot].sample and not watched.finished:
                logits.append(runner.logits[slot * runner.rows_per_slot].clone())
        clock[0] += 1
    return request.tokens, logits


BATCHES = {
    "joined together": ([Other()], 0),
    "joins later": ([Other()], 5),
    "other joins later": ([Other(join_at=7)], 0),
    "other pauses": ([Other(paused=lambda step: 3 <= step < 12)], 0),
    "other leaves, slot moves": ([Other(tokens=6), Other(join_at=1, tokens=60)], 2),
    "full batch": ([Other(join_at=i % 3, tokens=20 + 5 * i) for i in range(SLOTS - 1)], 1),
}


def tiny(variant: Variant, english_model: LoadedModel, checkpoints: Checkpoints) -> LoadedModel:
    if variant is Variant.ENGLISH:
        return english_model
    return load_model(checkpoints(variant), device="cpu")


@pytest.mark.parametrize("variant", [Variant.ENGLISH, Variant.TURBO])
def test_logits_are_identical_alone_and_in_any_batch(
    variant: Variant, english_model: LoadedModel, checkpoints: Checkpoints
) -> None:
    model = tiny(variant, english_model, checkpoints)
    tokens, alone = watched_logits(model, [])
    assert len(tokens) == 50 and len(alone) == 49
    for name, (others, join_at) in BATCHES.items():
        batched_tokens, batched = watched_logits(model, others, join_at)
        assert batched_tokens == tokens, name
        for step, (a, b) in enumerate(zip(alone, batched, strict=True)):
            assert torch.equal(a, b), f"{name}: step {step} differs by {(a - b).abs().max():g}"


@pytest.mark.parametrize("variant", [Variant.ENGLISH, Variant.TURBO])
def test_without_batch_invariance_logits_differ_by_rounding_only(
    variant: Variant, english_model: LoadedModel, checkpoints: Checkpoints
) -> None:
    model = tiny(variant, english_model, checkpoints)
    _, alone = watched_logits(model, [], invariant=False)
    for name, (others, join_at) in BATCHES.items():
        _, batched = watched_logits(model, others, join_at, invariant=False)
        worst = max(float((a - b).abs().max()) for a, b in zip(alone, batched, strict=False))
        assert worst < ROUNDING, f"{name}: logits differ by {worst:g}"
