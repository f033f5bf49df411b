"""Running a Pipecat TTS service the way Pipecat runs it: in a pipeline, frames in at the top,
every frame that leaves it (downstream at the bottom, upstream at the top: errors go up)
recorded with its arrival time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from pipecat.frames.frames import EndFrame, Frame, StartFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.workers.runner import WorkerRunner


@dataclass
class Arrival:
    frame: Frame
    at: float  # time.monotonic()


class Recorder(FrameProcessor):
    """Keeps what passes it in one direction into a shared list, passes everything on."""

    def __init__(self, direction: FrameDirection, arrivals: list[Arrival]) -> None:
        super().__init__()
        self.direction = direction
        self.arrivals = arrivals

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self.direction and not isinstance(frame, StartFrame):
            self.arrivals.append(Arrival(frame, time.monotonic()))
        await self.push_frame(frame, direction)


# a frame to queue, seconds to wait before the next, or something to await before the next
Step = Frame | float | Callable[[], Awaitable[object]]


async def run_pipeline(service: FrameProcessor, steps: Sequence[Step],
                       sample_rate: int = 24000) -> list[Arrival]:  # fmt: skip
    """Queue ``steps`` into the service's pipeline, then an EndFrame; wait for the end."""
    arrivals: list[Arrival] = []
    top = Recorder(FrameDirection.UPSTREAM, arrivals)
    bottom = Recorder(FrameDirection.DOWNSTREAM, arrivals)
    worker = PipelineWorker(Pipeline([top, service, bottom]), cancel_on_idle_timeout=False,
                            params=PipelineParams(audio_out_sample_rate=sample_rate))  # fmt: skip
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(worker: PipelineWorker, frame: Frame) -> None:
        started.set()

    async def feed() -> None:
        await asyncio.wait_for(started.wait(), timeout=30)
        for step in steps:
            if isinstance(step, Frame):
                await worker.queue_frame(step)
            elif isinstance(step, float | int):
                await asyncio.sleep(step)
            else:
                await step()
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.wait_for(asyncio.gather(runner.run(), feed()), timeout=120)
    return arrivals
