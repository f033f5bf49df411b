"""A model's work loop: an asyncio task that runs one batch at a time in a thread of its own.

Scheduling stays on the event loop (plain Python, no locks: requests, the scheduler and the loop
share one thread); only the model call runs in the loop's single worker thread, so the event
loop keeps serving while the device works, and T3 and S3Gen, each with a loop of its own, work
side by side. The task is started on first use in the running event loop (and again if that
loop changed, as between tests).

On CUDA each loop's thread queues its work on a CUDA stream of its own: on the one default
stream, T3's steps and S3Gen's batches would run one after the other, and every sync of one would
wait for the other's queue. Tensors the loops share are made elsewhere (the model, voices) and
read-only; whoever makes them calls :func:`ready_for_loops` before handing them over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

log = logging.getLogger(__name__)
T = TypeVar("T")


def ready_for_loops(device: torch.device) -> None:
    """Wait until the device work queued by this thread is done, so that a loop's stream may
    read what it made (a voice's conditioning, the engine's buffers)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def _start_thread(threads: int, device: torch.device | None) -> None:
    torch.set_num_threads(threads)
    if device is not None and device.type == "cuda":
        torch.cuda.set_stream(torch.cuda.Stream(device))  # current for this thread only


class ModelLoop:
    def __init__(
        self, name: str, threads: int | None = None, device: torch.device | None = None
    ) -> None:
        self.name = name
        # torch's intra-op thread count is kept per thread, and a new thread starts with one:
        # the loop's thread gets ``threads``, else the count of the thread that made it.
        threads = threads or torch.get_num_threads()
        self.executor = ThreadPoolExecutor(
            1, thread_name_prefix=name, initializer=_start_thread, initargs=(threads, device)
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def has_work(self) -> bool:
        raise NotImplementedError

    async def run_once(self) -> None:
        """Schedule one batch, run it (``await self.call``), hand out its results."""
        raise NotImplementedError

    def forget(self) -> None:
        """Drop the work of an event loop that is gone (requests that can no longer listen)."""
        raise NotImplementedError

    def bind(self) -> None:
        """Run the loop in the running event loop; the work of an earlier one is dropped. Call
        before adding work (from the event loop's thread)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            if self._loop is not None and self._loop is not loop:
                self.forget()
            self._loop, self._wake = loop, asyncio.Event()
            self._task = loop.create_task(self._run(), name=f"{self.name}-loop")

    def wake(self) -> None:
        """Something changed that may give the loop work."""
        self.bind()
        self._wake.set()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self.executor, fn, *args)

    def close(self) -> None:
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _run(self) -> None:
        while True:
            if not self.has_work():
                self._wake.clear()
                await self._wake.wait()
                continue
            await self.run_once()
