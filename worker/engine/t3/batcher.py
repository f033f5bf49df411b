"""T3 for every live request of an engine, in one batch: the scheduler, the runner and the loop
joined.

A sequence runs while its token buffer (:mod:`.token_buffer`) has room: a request that stops
reading (its listener is slow) lets the buffer fill and the sequence pauses, riding along in the
batch without holding anyone back.
"""

from __future__ import annotations

import logging

from ..model.loading import LoadedModel
from ..model_loop import ModelLoop
from .alignment_probe import Head
from .runner import T3Runner
from .scheduler import T3Scheduler, T3Sequence

log = logging.getLogger(__name__)


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
