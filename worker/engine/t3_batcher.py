"""T3 for every live request of an engine, in one batch: the scheduler, the runner and the loop
joined, and each sequence's token buffer, which is how a request reads its tokens.

A sequence runs while its buffer has room: a request that stops reading (its listener is slow)
lets the buffer fill and the sequence pauses, riding along in the batch without holding anyone
back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from common.variants import Variant

from .alignment_probe import Head
from .loading import LoadedModel
from .model_loop import ModelLoop
from .t3_runner import T3Runner
from .t3_scheduler import T3Scheduler, T3Sequence

log = logging.getLogger(__name__)


def drops_token_before_eos(variant: Variant) -> bool:
    """Whether a chunk ended by EOS loses its last speech token: multilingual, as upstream's
    GitHub main drops its audio (``wav[: (n_tokens - 1) * 960]``; the token just before EOS
    decodes to ~40 ms of noise). 0.1.7 keeps it, and so do English, Turbo and Nano."""
    return variant is Variant.MULTILINGUAL


class TokenBuffer:
    """The tokens a sequence has generated and its reader has not taken yet.

    With ``drop_before_eos`` the newest token is held back until the next one comes or the
    sequence ends, and dropped (unless it is the only one, as upstream keeps one) if EOS ended
    the sequence; an end by budget keeps every token. The scheduler hands on no EOS token and a
    budget's end comes with its last token, so a sequence that ends with an empty push after
    tokens ended at EOS.
    """

    def __init__(self, room: int, on_room: Callable[[], None], drop_before_eos: bool = False):
        self.room = room  # the sequence pauses once this many tokens wait here
        self.on_room = on_room
        self.held = int(drop_before_eos)  # newest tokens kept from the reader until the end
        self.tokens: list[int] = []
        self.received = 0
        self.done = False
        self.error: BaseException | None = None
        self._changed = asyncio.Event()

    def push(self, tokens: list[int], finished: bool) -> None:
        self.tokens.extend(tokens)
        self.received += len(tokens)
        if finished and not tokens and self.held and self.received > 1 and not self.done:
            self.tokens.pop()  # ended at EOS: its last token (held back, so not taken yet)
        self.done = self.done or finished
        self._changed.set()

    def fail(self, error: BaseException) -> None:
        self.error, self.done = error, True
        self._changed.set()

    def wanted(self) -> bool:
        return len(self.tokens) < self.room + self.held

    def _ready(self) -> int:
        return len(self.tokens) if self.done else max(0, len(self.tokens) - self.held)

    async def take(self, count: int) -> list[int] | None:
        """Up to ``count`` tokens, once ``count`` are there or the sequence ended; None at the
        end. Raises the error that ended the sequence, if one did."""
        while self._ready() < count and not self.done:
            self._changed.clear()
            await self._changed.wait()
        if self.error is not None:
            raise self.error
        if not self.tokens:
            return None
        taken, self.tokens = self.tokens[:count], self.tokens[count:]
        self.on_room()
        return taken


class T3Batcher(ModelLoop):
    def __init__(
        self,
        model: LoadedModel,
        slots: int,
        context: int,
        threads: int | None = None,
        batch_invariant: bool = False,
        cuda_graphs: bool = True,
        alignment_heads: tuple[Head, ...] | None = None,
    ) -> None:
        super().__init__("t3", threads, model.device)
        eos = model.t3.hp.stop_speech_token
        self.scheduler = T3Scheduler(slots, context, eos)
        self.runner = T3Runner(model, slots, context, batch_invariant, cuda_graphs, alignment_heads)

    def add(self, sequence: T3Sequence) -> None:
        self.bind()
        self.scheduler.add(sequence)
        self.wake()

    def cancel(self, sequence: T3Sequence) -> None:
        self.scheduler.cancel(sequence)
        self.wake()

    def has_work(self) -> bool:
        return not self.scheduler.idle

    def forget(self) -> None:
        for sequence in [*self.scheduler.slots, *self.scheduler.waiting]:
            self.scheduler.cancel(sequence)

    async def run_once(self) -> None:
        step = self.scheduler.plan()
        try:
            result = await self.call(self.runner.step, step)
        except Exception as error:  # every sequence of the step ends with it
            log.exception("T3 step failed")
            self.scheduler.fail(step, error)
            return
        self.scheduler.commit(step, result)
