"""The worker pool: what the routes use to run requests on the workers.

It wires the parts together: the sockets (``transport``), dispatch and result routing
(``dispatch``), and the workers' life (``supervisor``). One receiver task reads every worker's
results, handing heartbeats to the supervisor and the rest to the requests; a monitor task
restarts lost workers. Everything outside reads the pool through :meth:`WorkerPool.status`.
"""

from __future__ import annotations

import asyncio
import time

from common.protocol import Audio, Drain, Heartbeat, InvalidateVoice, TextPiece
from common.settings import Settings

from .dispatch import Dispatcher, PoolUnavailable, StreamObserver
from .status import PoolStatus
from .streams import AudioChunk, RequestStream
from .supervisor import MONITOR_INTERVAL, Supervisor
from .transport import Transport
from .workers import Launcher, Slot, WorkerHandle, plan_workers, spawn


class WorkerPool:
    def __init__(
        self, settings: Settings, slots: list[Slot] | None = None, launcher: Launcher = spawn
    ) -> None:
        self.settings = settings
        self.handles = [
            WorkerHandle(slot) for slot in (slots if slots is not None else plan_workers(settings))
        ]
        self.transport = Transport()
        self.dispatcher = Dispatcher(settings, self.handles, self.transport)
        self.supervisor = Supervisor(
            settings, self.handles, self.transport, self.dispatcher, launcher
        )
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def accepting(self) -> bool:
        return self.supervisor.keep_running

    @property
    def observers(self) -> list[StreamObserver]:
        return self.dispatcher.observers

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.transport.bind()
        self.supervisor.keep_running = True
        for handle in self.handles:
            self.supervisor.launch(handle)
        self._tasks = [
            asyncio.create_task(self._receive()),
            asyncio.create_task(self.supervisor.monitor()),
        ]

    def begin_drain(self) -> None:
        """Refuse new requests (503) while those in flight carry on."""
        self.supervisor.keep_running = False
        self.draining = True

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until every submitted request has been released by its route; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.dispatcher.in_use and time.monotonic() < deadline:
            await asyncio.sleep(MONITOR_INTERVAL)
        return not self.dispatcher.in_use

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let workers finish theirs (up to ``timeout``), stop them, clean up."""
        self.supervisor.keep_running = False
        self.transport.publish(Drain())
        timeout = self.settings.shutdown_timeout_seconds if timeout is None else timeout
        await self.supervisor.stop_all(timeout)
        for task in self._tasks:
            task.cancel()
        self.transport.close()

    # --- requests -----------------------------------------------------------------------------

    async def submit(self, stream: RequestStream) -> None:
        """Give ``stream`` to a worker (see Dispatcher.submit); PoolUnavailable if none can."""
        retry = self.settings.retry_after_seconds
        if not self.accepting:
            raise PoolUnavailable("the service is shutting down", retry, "worker_draining")
        if not any(h.state == "ready" for h in self.handles):
            raise PoolUnavailable(self.status().reason, retry, "not_ready")
        await self.dispatcher.submit(stream)

    async def send_text(self, stream: RequestStream, piece: TextPiece) -> None:
        """Queue ``piece`` for the request's worker; waits while its unsent text is at the
        bound (see pending_text.py)."""
        await self.dispatcher.send_text(stream, piece)

    def release(self, stream: RequestStream) -> None:
        self.dispatcher.release(stream)

    def voice_changed(
        self, voice_id: str, clip: str | None = None, content_hash: str | None = None
    ) -> None:
        """Tell every worker: drop ``voice_id``'s conditioning (and warm the new clip, if any)."""
        message = InvalidateVoice(voice_id=voice_id, voice_path=clip, voice_hash=content_hash)
        self.transport.publish(message)

    # --- what others may know -----------------------------------------------------------------

    def status(self) -> PoolStatus:
        ready, reason = self._readiness()
        return PoolStatus(
            accepting=self.accepting,
            draining=self.draining,
            ready=ready,
            reason=reason,
            queued_requests=len(self.dispatcher.pending),
            in_use=len(self.dispatcher.in_use),
            workers=tuple(h.status() for h in self.handles),
            undelivered_messages=self.transport.undelivered,
        )

    def _readiness(self) -> tuple[bool, str]:
        """Ready once every worker has loaded and one can take requests."""
        if not self.accepting:
            return False, "the service is shutting down"
        waiting = [h for h in self.handles if not h.ever_ready]
        if waiting:
            states = ", ".join(f"{h.worker_id}: {h.error or h.state}" for h in waiting)
            return False, f"{len(waiting)} of {len(self.handles)} workers not ready ({states})"
        if not any(h.state == "ready" for h in self.handles):
            return False, "every worker is restarting"
        return True, f"{len(self.handles)} workers ready"

    async def _receive(self) -> None:
        while True:
            message, payload = await self.transport.receive()
            if isinstance(message, Heartbeat):
                self.supervisor.on_heartbeat(message)
            elif isinstance(message, Audio):
                chunk = AudioChunk(message.seq, payload or b"")
                self.dispatcher.deliver(message.request_id, chunk)
            else:
                self.dispatcher.deliver(message.request_id, message)
