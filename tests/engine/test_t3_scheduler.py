"""The T3 scheduler's decisions, in plain Python: no model, no tensors."""

from __future__ import annotations

import random

from worker.engine.t3.sampling import SamplingConfig
from worker.engine.t3.scheduler import T3Result, T3Scheduler, T3Sequence, T3Step

EOS = 99
GREEDY = SamplingConfig(temperature=0.0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)


class Listener:
    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.finished = False

    def __call__(self, tokens: list[int], finished: bool) -> None:
        assert not self.finished, "tokens after the end"
        self.tokens.extend(tokens)
        self.finished = finished


def sequence(
    name: str, budget: int = 10, runnable: bool = True, prompt_length: int = 5
) -> tuple[T3Sequence, Listener]:
    listener = Listener()

    def fail(error: BaseException) -> None:
        raise AssertionError(error)

    seq = T3Sequence(
        prompt=name, prompt_length=prompt_length, budget=budget, sampling=GREEDY,
        cfg_weight=0.5, ignore_eos=False,
        generator=None, on_tokens=listener, on_error=fail, runnable=lambda: runnable,
    )  # fmt: skip
    return seq, listener


def step(scheduler: T3Scheduler, token: int = 1, prompt_length: int = 5) -> T3Step:
    """Plan a step and commit what a runner would: ``token`` for every sampling slot."""
    plan = scheduler.plan()
    tokens = {i: token for i, s in enumerate(plan.slots) if s.sample}
    lengths = {slot: prompt_length for slot, _ in plan.prefill}
    scheduler.commit(plan, T3Result(tokens=tokens, prefill_lengths=lengths))
    return plan


def test_sequences_join_at_the_next_step_up_to_the_slots() -> None:
    scheduler = T3Scheduler(slots=2, context=100, eos=EOS)
    (a, _), (b, _), (c, _) = sequence("a"), sequence("b"), sequence("c")
    for s in (a, b, c):
        scheduler.add(s)
    plan = step(scheduler)
    assert [(slot, s.prompt) for slot, s in plan.prefill] == [(0, "a"), (1, "b")]
    # Each one's first token goes right after its prompt.
    assert [s.position for s in plan.slots] == [5, 5] and a.length == 6
    assert list(scheduler.waiting) == [c]


def test_a_finished_sequence_leaves_and_the_last_one_moves_into_its_slot() -> None:
    scheduler = T3Scheduler(slots=3, context=100, eos=EOS)
    (a, listen_a), (b, _), (c, _) = sequence("a", budget=1), sequence("b"), sequence("c")
    for s in (a, b, c):
        scheduler.add(s)
    step(scheduler)
    assert listen_a.finished and listen_a.tokens == [1]  # its budget
    plan = step(scheduler)
    assert plan.moves == ((2, 0),)  # c's cache goes to a's slot; nobody else's moves
    assert [s.sequence.prompt for s in plan.slots] == ["c", "b"]


def test_chained_departures_collapse_into_one_move_per_slot() -> None:
    scheduler = T3Scheduler(slots=4, context=100, eos=EOS)
    seqs = [sequence(name)[0] for name in "abcd"]
    for s in seqs:
        scheduler.add(s)
    step(scheduler)
    for name in "ad":  # a leaves: d would move to 0; d leaves too: c goes to 0 instead
        scheduler.cancel(seqs["abcd".index(name)])
    plan = step(scheduler)
    assert plan.moves == ((2, 0),)
    assert [s.sequence.prompt for s in plan.slots] == ["c", "b"]


def test_a_sequence_that_may_not_run_rides_along_without_advancing() -> None:
    scheduler = T3Scheduler(slots=2, context=100, eos=EOS)
    (a, listen_a), (paused, listen_p) = sequence("a"), sequence("p")
    scheduler.add(a)
    scheduler.add(paused)
    step(scheduler)
    paused.runnable = lambda: False
    plan = step(scheduler)
    assert [s.sample for s in plan.slots] == [True, False]
    assert len(listen_a.tokens) == 2 and len(listen_p.tokens) == 1
    assert plan.slots[1].position == paused.length  # rewritten when it resumes
    a.runnable = lambda: False
    assert scheduler.idle  # nobody may run: no step at all


def test_eos_ends_a_sequence_without_a_token_unless_a_count_is_fixed() -> None:
    scheduler = T3Scheduler(slots=2, context=100, eos=EOS)
    (a, listen_a), (b, listen_b) = sequence("a"), sequence("b")
    b.ignore_eos = True
    scheduler.add(a)
    scheduler.add(b)
    step(scheduler, token=EOS)
    assert listen_a.finished and listen_a.tokens == []
    assert not listen_b.finished and listen_b.tokens == [EOS]


def test_the_budget_is_cut_to_what_the_slot_holds() -> None:
    scheduler = T3Scheduler(slots=1, context=12, eos=EOS)
    seq, listener = sequence("long", budget=6, prompt_length=5)  # declared: it fits
    scheduler.add(seq)
    while not listener.finished:
        step(scheduler, prompt_length=8)  # the prefill came out longer
    assert len(listener.tokens) == 12 - 8 - 1  # the last fed token must still fit


def test_a_sequence_that_overflows_its_slot_fails_alone_and_never_reaches_the_runner() -> None:
    scheduler = T3Scheduler(slots=2, context=40, eos=EOS)
    errors: list[BaseException] = []
    (big, listen_big), (small, listen_small) = (
        sequence("big", budget=30, prompt_length=10),
        (sequence("small", budget=3)),
    )
    big.on_error = errors.append
    scheduler.add(big)
    scheduler.add(small)
    plan = step(scheduler)
    assert [s.prompt for _, s in plan.prefill] == ["small"]
    assert len(errors) == 1 and "do not fit the 40 KV-cache positions" in str(errors[0])
    assert big.finished and listen_big.tokens == []
    while not listen_small.finished:
        step(scheduler)
    assert listen_small.tokens == [1, 1, 1]


def test_a_cancelled_sequence_gets_no_more_tokens_and_frees_its_slot() -> None:
    scheduler = T3Scheduler(slots=1, context=100, eos=EOS)
    (a, listen_a), (b, _) = sequence("a"), sequence("b")
    scheduler.add(a)
    scheduler.add(b)
    plan = scheduler.plan()
    scheduler.cancel(a)  # while its step runs
    scheduler.commit(plan, T3Result(tokens={0: 1}, prefill_lengths={0: 5}))
    assert listen_a.tokens == []
    plan = step(scheduler)
    assert [slot_seq.prompt for _, slot_seq in plan.prefill] == ["b"]


def test_a_slot_with_non_finite_logits_fails_alone_and_the_others_go_on() -> None:
    scheduler = T3Scheduler(slots=2, context=100, eos=EOS)
    errors: list[BaseException] = []
    (bad, listen_bad), (good, listen_good) = sequence("bad"), sequence("good", budget=3)
    bad.on_error = errors.append
    scheduler.add(bad)
    scheduler.add(good)
    plan = scheduler.plan()
    scheduler.commit(
        plan, T3Result(tokens={1: 1}, prefill_lengths={0: 5, 1: 5}, invalid=frozenset({0}))
    )
    assert len(errors) == 1 and "non-finite logits" in str(errors[0]) and listen_bad.tokens == []
    plan = step(scheduler)
    assert [s.sequence for s in plan.slots] == [good]  # the failed one's slot was given up
    while not listen_good.finished:
        step(scheduler)
    assert listen_good.tokens == [1, 1, 1]


def test_sampled_slots_carry_their_sequence_draw_and_greedy_ones_draw_nothing() -> None:
    scheduler = T3Scheduler(slots=2, context=100, eos=EOS)
    (sampled, _), (greedy, _) = sequence("sampled"), sequence("greedy")
    sampled.sampling = SamplingConfig(temperature=0.8, top_p=1.0, min_p=0.0, repetition_penalty=1.0)
    sampled.generator, greedy.generator = random.Random(3), random.Random(3)
    scheduler.add(sampled)
    scheduler.add(greedy)
    plan = step(scheduler)
    expected = random.Random(3)
    assert [s.uniform for s in plan.slots] == [expected.random(), 0.0]
    assert greedy.generator.random() == random.Random(3).random()  # untouched
