"""Uvicorn with a drain on SIGTERM: stop taking requests, finish those in flight, exit 0.

Uvicorn's own graceful shutdown closes WebSockets at once (code 1012) and then exits by
re-raising the signal (status -15). Here the first SIGTERM or Ctrl-C only marks the pool as
draining: new requests get 503, ``/ping`` and ``/ready`` report it, and every request in flight,
HTTP or WebSocket, runs to its end, up to ``SHUTDOWN_TIMEOUT_SECONDS``. Then uvicorn shuts down
(lifespan: the workers are stopped) and the process exits 0. A second signal hurries it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from types import FrameType

import uvicorn

from .pool import WorkerPool

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, pool: WorkerPool, drain_timeout: float) -> None:
        super().__init__(config)
        self.pool = pool
        self.drain_timeout = drain_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_task: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_task is not None or self._loop is None:
            self.should_exit = True  # second signal (or before start-up): stop now
            if sig == signal.SIGINT and self._drain_task is not None:
                self.force_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain_task is None:
            self._drain_task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        in_flight = self.pool.status().in_use
        log.info("shutting down: finishing %d request(s) in flight", in_flight)
        self.pool.begin_drain()
        if not await self.pool.wait_drained(self.drain_timeout):
            log.warning(
                "%d request(s) still running after %.0f s; stopping anyway",
                self.pool.status().in_use,
                self.drain_timeout,
            )
        self.should_exit = True
