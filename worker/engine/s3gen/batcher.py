"""S3Gen for every live request of an engine: their windows decoded together, most urgent first.

A request's stream plans its next window and waits for it here; the loop takes the waiting
windows in order of urgency (:func:`pick`: those of requests with no audio yet, then those whose
listener will run out of audio soonest), up to ``max_windows`` at a time, and decodes them in one
batch. Under load windows pile up while a batch runs, so batches grow by themselves; a lone
request never waits for company.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..model.loading import LoadedModel
from ..model_loop import ModelLoop
from ..stats import SynthesisStats
from .runner import S3GenRunner, WindowInputs
from .stream import S3GenStream


@dataclass(eq=False)
class WindowJob:
    inputs: WindowInputs
    progress: SynthesisStats
    future: asyncio.Future[np.ndarray]
    arrival: float = field(default_factory=time.perf_counter)


def pick(jobs: Sequence[WindowJob], limit: int, first_limit: int) -> list[WindowJob]:
    """The next batch: the windows of requests without audio yet, if any wait (in arrival
    order, at most ``first_limit``: a shorter batch ends sooner), else the ``limit`` windows of
    the listeners who run dry soonest. Jobs whose request has gone are left out."""
    live = [job for job in jobs if not job.future.done()]
    first = [job for job in live if job.progress.first_audio is None]
    if first:
        return sorted(first, key=lambda job: job.arrival)[:first_limit]
    return sorted(live, key=lambda job: job.progress.runs_dry_at() or 0.0)[:limit]


class S3GenBatcher(ModelLoop):
    def __init__(
        self, model: LoadedModel, max_windows: int, first_windows: int, threads: int | None = None,
        cuda_graphs: bool = True, dtype: str = "float32",
    ) -> None:  # fmt: skip
        super().__init__("s3gen", threads, model.device)
        self.runner = S3GenRunner(model, cuda_graphs, dtype)
        self.max_windows = max_windows
        self.first_windows = first_windows
        self.waiting: list[WindowJob] = []

    async def decode(
        self, stream: S3GenStream, tokens: list[int], progress: SynthesisStats, final: bool = False
    ) -> np.ndarray:
        """Add ``tokens`` to ``stream``; the PCM that became final (a window decoded if due)."""
        work = stream.plan(tokens, final)
        if isinstance(work, np.ndarray):
            return work
        job = WindowJob(stream.inputs(work), progress, asyncio.get_running_loop().create_future())
        self.bind()
        self.waiting.append(job)
        self.wake()
        return stream.complete(work, await job.future)

    def has_work(self) -> bool:
        self.waiting = [job for job in self.waiting if not job.future.done()]
        return bool(self.waiting)

    def forget(self) -> None:
        self.waiting = []

    async def run_once(self) -> None:
        batch = pick(self.waiting, self.max_windows, self.first_windows)
        self.waiting = [job for job in self.waiting if job not in batch]
        try:
            wavs = await self.call(self.runner.decode, [job.inputs for job in batch])
        except Exception as error:  # every window of the batch fails with it
            logging.getLogger(__name__).exception("S3Gen batch failed")
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        for job, wav in zip(batch, wavs, strict=True):
            if not job.future.done():
                job.future.set_result(wav)
