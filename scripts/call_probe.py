"""Time the engine's model calls, and count their host-device syncs, in place.

:class:`CallProbe` wraps a running :class:`StreamingEngine`'s ``engine.t3.runner.step`` and
``engine.s3gen.runner.decode`` (the two calls its batch loops make) and records one
:class:`Call` per call: its wall time, its batch (T3: sequences sampled, S3Gen: windows), the
sequences that joined in it (T3 prefill), and, while ``counting`` is on, its syncs.

- **Time.** Both calls hand back host data (T3 the drawn tokens as ints, S3Gen numpy audio), so
  their wall time already covers the device work they return (``wall_ms``). On CUDA the call is
  also timed with CUDA events recorded on the calling thread's stream before and after it
  (``ms``): what the device's queue spent from the call's first work to its last, read once the
  pass is over (:meth:`CallProbe.take`), so the timed pass itself never waits for the device.
  With T3 and S3Gen in two Python threads, wall times include GIL hand-offs (5 ms switch
  interval); the events only the gaps they leave in the device's queue (none inside a replayed
  graph). On a CPU ``ms`` is the wall time.
- **Syncs, on CUDA:** real ones. ``torch.cuda.set_sync_debug_mode("warn")`` makes every
  synchronizing CUDA operation a warning; a ``showwarning`` hook credits each to the call that
  the warning's thread is running (a thread-local), or to ``outside`` (the event loop, voice
  conditioning: work that should not touch the device). The warnings module is process-wide, so
  counting is a pass of its own, never the timed one.
- **Syncs, on a CPU:** what a GPU would do, counted by
  :class:`worker.engine.transfer_count.TransferCounter` inside the call (its modes are
  per-thread, so the other loop's calls are not mixed in).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from worker.engine.pipeline import StreamingEngine
from worker.engine.transfer_count import TransferCounter

SYNC_WARNING = "called a synchronizing CUDA operation"


@dataclass
class Call:
    wall_ms: float
    batch: int  # T3: sequences that drew a token; S3Gen: windows decoded
    joined: int = 0  # T3: sequences prefilled in this step
    syncs: int | None = None  # counted only while counting
    events: tuple[Any, Any] | None = None  # CUDA: (start, end) events on the call's stream
    ms: float = 0.0  # CUDA: between the events (set by ``take``); CPU: the wall time


class _Tally(threading.local):
    """The syncs of the call this thread is running, if any."""

    syncs: int | None = None


class CallProbe:
    def __init__(self, engine: StreamingEngine, strict: bool = True) -> None:
        self.cuda = engine.model.device.type == "cuda"
        self.strict = strict  # CPU counting: also the syncs a GPU makes that are easy to miss
        self.t3: list[Call] = []
        self.s3gen: list[Call] = []
        self.outside = 0  # CUDA syncs counted outside both model calls
        self.counting = False
        self._tally = _Tally()
        t3, s3gen = engine.t3.runner, engine.s3gen.runner
        t3.step = self._wrap(t3.step, self.t3, _t3_shape, getattr(t3, "stream", None))  # type: ignore[method-assign]
        s3gen.decode = self._wrap(  # type: ignore[method-assign]
            s3gen.decode, self.s3gen, lambda windows, _: (len(windows), 0),
            getattr(s3gen, "stream", None),
        )  # fmt: skip

    def take(self) -> tuple[list[Call], list[Call], int]:
        """The calls recorded since the last take (T3, S3Gen) and the syncs outside them."""
        if self.cuda:
            for call in (*self.t3, *self.s3gen):
                if call.events is not None:
                    call.events[1].synchronize()
                    call.ms = call.events[0].elapsed_time(call.events[1])
        taken = (self.t3[:], self.s3gen[:], self.outside)
        self.t3.clear()
        self.s3gen.clear()
        self.outside = 0
        return taken

    @contextmanager
    def count_syncs(self) -> Iterator[None]:
        """Count each call's syncs while inside (on CUDA, real ones: see the module's doc)."""
        self.counting = True
        if not self.cuda:
            try:
                yield
            finally:
                self.counting = False
            return
        shown = warnings.showwarning
        with warnings.catch_warnings():
            warnings.filterwarnings("always", message=SYNC_WARNING)
            warnings.showwarning = self._hook(shown)
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield
            finally:
                torch.cuda.set_sync_debug_mode("default")
                self.counting = False

    def _hook(self, shown: Callable[..., None]) -> Callable[..., None]:
        def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
            if SYNC_WARNING not in str(message):
                shown(message, category, *args, **kwargs)
            elif self._tally.syncs is not None:
                self._tally.syncs += 1
            else:
                self.outside += 1

        return show

    def _wrap(
        self, call: Callable[[Any], Any], calls: list[Call],
        shape: Callable[[Any, Any], tuple[int, int]], stream: Any,
    ) -> Callable[[Any], Any]:  # fmt: skip
        def probed(argument: Any) -> Any:
            counting = self.counting
            events = None
            started = time.perf_counter()
            if counting and not self.cuda:
                with TransferCounter(strict=self.strict) as count:
                    result = call(argument)
                syncs: int | None = count.syncs
            elif counting:
                self._tally.syncs = 0
                try:
                    result = call(argument)
                finally:
                    syncs, self._tally.syncs = self._tally.syncs, None
            elif self.cuda:
                queue = stream or torch.cuda.current_stream()
                events = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                events[0].record(queue)
                result = call(argument)
                events[1].record(queue)
                syncs = None
            else:
                result = call(argument)
                syncs = None
            wall = 1000 * (time.perf_counter() - started)
            calls.append(Call(wall, *shape(argument, result), syncs=syncs, events=events, ms=wall))
            return result

        return probed


def _t3_shape(plan: Any, result: Any) -> tuple[int, int]:
    return len(result.tokens), len(plan.prefill)
