"""A sequence's token buffer: slices for the reader, and multilingual's token before EOS dropped
(upstream main), fed by the real scheduler so that its end-of-sequence signals are the ones
relied on."""

from __future__ import annotations

import asyncio

from common.variants import Variant
from tests.engine.test_t3_scheduler import EOS, sequence, step
from worker.engine.t3.scheduler import T3Scheduler
from worker.engine.t3.token_buffer import TokenBuffer, drops_token_before_eos


def generate(tokens: list[int], budget: int, drop: bool, room: int = 4) -> list[int]:
    """What a reader taking slices of 2 gets when the scheduler's sequence draws ``tokens``."""
    scheduler = T3Scheduler(slots=1, context=100, eos=EOS)
    seq, _ = sequence("a", budget=budget)
    buffer = TokenBuffer(room, lambda: None, drop_before_eos=drop)
    seq.on_tokens = buffer.push
    scheduler.add(seq)
    for token in tokens:
        if seq.finished:
            break
        step(scheduler, token)
    step(scheduler)  # lets a sequence ended by its budget leave

    async def read() -> list[int]:
        out: list[int] = []
        while taken := await buffer.take(2):
            out += taken
        return out

    return asyncio.run(read())


def test_only_multilingual_drops_the_token_before_eos() -> None:
    assert drops_token_before_eos(Variant.MULTILINGUAL)
    assert not any(drops_token_before_eos(v) for v in Variant if v is not Variant.MULTILINGUAL)


def test_the_last_token_before_eos_is_dropped() -> None:
    assert generate([5, 6, 7, EOS], budget=10, drop=True) == [5, 6]
    assert generate([5, 6, 7, EOS], budget=10, drop=False) == [5, 6, 7]


def test_an_end_by_budget_keeps_every_token() -> None:
    assert generate([5, 6, 7, 8], budget=3, drop=True) == [5, 6, 7]


def test_a_lone_token_before_eos_is_kept_as_upstream_does() -> None:
    assert generate([5, EOS], budget=10, drop=True) == [5]


def test_the_held_token_waits_and_a_full_buffer_still_gets_its_slice() -> None:
    buffer = TokenBuffer(2, lambda: None, drop_before_eos=True)
    buffer.push([1, 2], False)
    assert buffer.wanted(), "a slice of `room` tokens needs one more behind it"
    buffer.push([3], False)
    assert not buffer.wanted()
    assert asyncio.run(buffer.take(2)) == [1, 2]
    assert buffer.tokens == [3]  # not handed out until the next token or the end
