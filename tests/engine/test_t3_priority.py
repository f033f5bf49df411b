"""First audio before anything else, in plain Python: the rule alone, then through the T3
scheduler's plan (no model, no tensors)."""

from __future__ import annotations

from worker.engine.t3.priority import FirstWindow, FirstWindowPriority
from worker.engine.t3.sampling import SamplingConfig
from worker.engine.t3.scheduler import T3Result, T3Scheduler, T3Sequence

GREEDY = SamplingConfig(temperature=0.0, top_p=1.0, min_p=0.0, repetition_penalty=1.0)
WINDOW = 4  # tokens of a first window


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def test_a_request_short_of_its_first_window_runs() -> None:
    priority, window = FirstWindowPriority(Wakes()), FirstWindow()
    priority.tokens_out(window, WINDOW - 1, WINDOW)
    assert priority.may_run(window)


def test_a_first_window_out_pauses_its_request_and_those_past_theirs() -> None:
    wakes = Wakes()
    priority = FirstWindowPriority(wakes)
    waiting, racing, past = FirstWindow(), FirstWindow(), FirstWindow(decoded=True)
    priority.tokens_out(waiting, WINDOW, WINDOW)
    assert not priority.may_run(waiting)
    assert not priority.may_run(past)
    assert priority.may_run(racing)  # still racing to its own first audio
    priority.decoded(waiting)
    assert wakes.count == 1
    assert priority.may_run(waiting) and priority.may_run(past)


def test_tokens_after_the_first_window_is_decoded_pause_nobody() -> None:
    wakes = Wakes()
    priority, window = FirstWindowPriority(wakes), FirstWindow()
    priority.decoded(window)  # e.g. a request that ended before its first window
    priority.tokens_out(window, WINDOW * 3, WINDOW)
    assert priority.may_run(window) and wakes.count == 0
    priority.decoded(window)
    assert wakes.count == 0  # nobody was held back


def sequence(window: FirstWindow, priority: FirstWindowPriority) -> T3Sequence:
    return T3Sequence(
        prompt=None, prompt_length=5, budget=10, sampling=GREEDY, cfg_weight=0.5,
        ignore_eos=False, generator=None, on_tokens=lambda tokens, finished: None,
        on_error=lambda error: None, runnable=lambda: priority.may_run(window),
    )  # fmt: skip


def test_the_scheduler_steps_only_what_the_rule_lets_run() -> None:
    scheduler, wakes = T3Scheduler(slots=3, context=100, eos=99), Wakes()
    priority = FirstWindowPriority(wakes)
    first, second, old = FirstWindow(), FirstWindow(), FirstWindow(decoded=True)
    for window in (first, second, old):
        scheduler.add(sequence(window, priority))
    plan = scheduler.plan()  # the joining step samples all
    scheduler.commit(plan, T3Result(tokens={0: 1, 1: 1, 2: 1}, prefill_lengths={}))
    priority.tokens_out(first, WINDOW, WINDOW)
    assert [s.sample for s in scheduler.plan().slots] == [False, True, False]
    priority.decoded(first)
    assert [s.sample for s in scheduler.plan().slots] == [True, True, True]
    assert wakes.count == 1
