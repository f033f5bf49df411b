"""Which T3 sequences run in the next batched step: plain Python, testable without a model.

Every live sequence holds one *slot* of the KV cache, and the slots in use are always the first
``n`` (``slots[0:n]``): a step then runs over one contiguous block of the cache, whatever joined
or left. A sequence that joins takes slot ``n``; one that leaves is replaced by the last sequence,
whose cache is moved into the hole (one slot copied, never everyone's). A sequence that may not
run now (its listener is behind, or it waits for its first audio) stays in its slot and rides
along: its row is computed and thrown away, and it keeps its place, so pausing and resuming
copy nothing.

The scheduler turns its state into a :class:`T3Step` for the model runner, and takes back the
runner's :class:`T3Result`.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequestError, NonFiniteLogitsError
from ..text.budgets import speech_room
from .sampling import SamplingConfig

_ids = itertools.count()


@dataclass(eq=False)
class T3Sequence:
    """One text chunk's speech tokens being generated: what the scheduler knows of it.

    ``prompt`` is opaque here (the runner builds the prefill from it), ``prompt_length`` the
    KV positions its prefill fills; ``generator`` draws the sequence's random numbers, one per
    sampled token (a seeded ``random.Random``: a seed reproduces a request whatever else shares
    the batch); ``runnable`` says whether it may take a step now; ``on_tokens`` receives each
    step's tokens and, once, ``finished=True``; ``on_error`` the error that ended it instead.
    """

    prompt: Any
    prompt_length: int
    budget: int  # most tokens it may generate
    sampling: SamplingConfig
    cfg_weight: float
    ignore_eos: bool
    generator: random.Random
    on_tokens: Callable[[list[int], bool], None]
    on_error: Callable[[BaseException], None]
    runnable: Callable[[], bool] = lambda: True
    seq_id: int = field(default_factory=lambda: next(_ids))
    length: int = 0  # positions filled in its KV cache
    generated: int = 0
    cancelled: bool = False
    finished: bool = False
    # Per generated token, where its speech was in the text (text-token index), read from the
    # alignment heads; empty when the runner has none.
    text_positions: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SlotStep:
    """What one slot of the batch does this step."""

    sequence: T3Sequence
    sample: bool  # draw its next token and feed it; False: ride along, results discarded
    position: int  # where the fed token's keys and values go in its cache
    speech_position: int  # the fed token's index among the speech tokens (learned positions)
    uniform: float = 0.0  # the draw that picks its token, in [0, 1) (0 for a greedy one)


@dataclass(frozen=True)
class T3Step:
    """One batched step: first the slot moves, then the prefills, then the decode."""

    moves: tuple[tuple[int, int], ...]  # (from slot, to slot), applied together
    prefill: tuple[tuple[int, T3Sequence], ...]  # (slot, sequence) joining now
    slots: tuple[SlotStep, ...]  # slots[i] is slot i; the batch is slots 0 .. len - 1


@dataclass(frozen=True)
class T3Result:
    """The token each sampling slot drew, the prefill lengths of those that joined, the
    slots whose logits were not finite (they drew no token), and where in its text each
    sampling slot's attention was (without alignment heads: none)."""

    tokens: dict[int, int]  # slot -> token
    prefill_lengths: dict[int, int]  # slot -> positions its prompt filled
    invalid: frozenset[int] = frozenset()
    text_positions: dict[int, int] = field(default_factory=dict)  # slot -> text-token index


class T3Scheduler:
    def __init__(self, slots: int, context: int, eos: int) -> None:
        self.capacity = slots
        self.context = context  # KV positions per slot
        self.eos = eos
        self.slots: list[T3Sequence] = []
        self.waiting: deque[T3Sequence] = deque()
        self._moves: list[tuple[int, int]] = []

    def add(self, sequence: T3Sequence) -> None:
        self.waiting.append(sequence)

    def cancel(self, sequence: T3Sequence) -> None:
        """Stop ``sequence``; its slot is given up at the next step. No more tokens arrive."""
        sequence.cancelled = True
        if sequence in self.waiting:
            self.waiting.remove(sequence)

    @property
    def idle(self) -> bool:
        """Nothing to do until a sequence joins or one may run again."""
        self._leave_finished()
        return not self.waiting and not any(s.runnable() for s in self.slots)

    def plan(self) -> T3Step:
        self._leave_finished()
        joining = []
        while self.waiting and len(self.slots) < self.capacity:
            sequence = self.waiting.popleft()
            if not self._fits(sequence):
                continue
            joining.append((len(self.slots), sequence))
            self.slots.append(sequence)
        for _, sequence in joining:  # its first token goes right after its prompt
            sequence.length = sequence.prompt_length
        joined = {id(s) for _, s in joining}
        steps = tuple(self._slot_step(s, id(s) in joined or s.runnable()) for s in self.slots)
        moves, self._moves = tuple(self._moves), []
        return T3Step(moves=moves, prefill=tuple(joining), slots=steps)

    @staticmethod
    def _slot_step(sequence: T3Sequence, sample: bool) -> SlotStep:
        greedy = sequence.sampling.greedy
        return SlotStep(
            sequence=sequence,
            sample=sample,
            position=sequence.length,
            speech_position=sequence.generated + 1,
            uniform=sequence.generator.random() if sample and not greedy else 0.0,
        )

    def commit(self, step: T3Step, result: T3Result) -> None:
        """Take the runner's results; tell each sequence its tokens."""
        for slot, length in result.prefill_lengths.items():
            self.slots[slot].length = length
            budget_left = speech_room(self.context, length)
            self.slots[slot].budget = max(0, min(self.slots[slot].budget, budget_left))
        for slot in result.invalid:
            self._fail(step.slots[slot].sequence, NonFiniteLogitsError())
        for slot, token in result.tokens.items():
            sequence = step.slots[slot].sequence
            if sequence.cancelled or sequence.finished:
                continue
            self._advance(sequence, token, result.text_positions.get(slot))

    def fail(self, step: T3Step, error: BaseException) -> None:
        """The runner failed ``step``: every sequence in it ends with ``error``."""
        for slot in step.slots:
            self._fail(slot.sequence, error)

    @staticmethod
    def _fail(sequence: T3Sequence, error: BaseException) -> None:
        if not (sequence.finished or sequence.cancelled):
            sequence.finished = True
            sequence.on_error(error)

    def _fits(self, sequence: T3Sequence) -> bool:
        """A sequence whose prompt and budget overflow a slot never reaches the runner (whose
        cache it would overrun, failing every sequence of the step): it alone ends, with an
        error."""
        if sequence.budget <= speech_room(self.context, sequence.prompt_length):
            return True
        sequence.finished = True
        sequence.on_error(
            InvalidRequestError(
                "text",
                f"a text chunk's prompt ({sequence.prompt_length} positions) and speech budget "
                f"({sequence.budget} tokens) do not fit the {self.context} KV-cache positions "
                "of a slot; shorten the text or raise KV_CACHE_TOKENS",
            )
        )
        return False

    def _advance(self, sequence: T3Sequence, token: int, text_position: int | None) -> None:
        if token == self.eos and not sequence.ignore_eos:
            sequence.finished = True
            sequence.on_tokens([], True)
            return
        if text_position is not None:
            sequence.text_positions.append(text_position)
        sequence.generated += 1
        sequence.length += 1
        sequence.finished = sequence.generated >= sequence.budget
        sequence.on_tokens([token], sequence.finished)

    def _leave_finished(self) -> None:
        """Free the slots of finished and cancelled sequences, moving the last ones in."""
        slot = 0
        while slot < len(self.slots):
            sequence = self.slots[slot]
            if not (sequence.finished or sequence.cancelled or sequence.budget <= 0):
                slot += 1
                continue
            if not sequence.finished and not sequence.cancelled:
                sequence.finished = True
                sequence.on_tokens([], True)
            last = self.slots.pop()
            if last is not sequence:
                self.slots[slot] = last
                self._record_move(len(self.slots), slot)

    def _record_move(self, source: int, target: int) -> None:
        """Slot ``source``'s cache goes to ``target``. Pending moves stay a set the runner can
        apply at once: whatever was moved into ``target`` before has left again, and a cache
        already on its way to ``source`` goes straight to ``target``."""
        moves = [(src, dst) for src, dst in self._moves if dst != target]
        origin = next((src for src, dst in moves if dst == source), source)
        self._moves = [(src, dst) for src, dst in moves if dst != source]
        self._moves.append((origin, target))
