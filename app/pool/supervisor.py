"""Supervision: starting the workers, reading their heartbeats, and starting again the ones
that exit or go silent, failing only their own requests.

A worker is lost when its process has exited, when it is ready but silent for
``HEARTBEAT_TIMEOUT_SECONDS`` (it is killed), or when it is still starting or loading after
``WORKER_START_TIMEOUT_SECONDS`` (killed too). It is started again after a back-off of 0.25 s,
doubling per consecutive failure up to 30 s, reset once it is ready again; each start is a new
generation with a new job socket, and late heartbeats of an earlier generation are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from common.protocol import Heartbeat
from common.settings import Settings

from .dispatch import Dispatcher
from .transport import Transport
from .workers import Launcher, WorkerHandle

log = logging.getLogger(__name__)
MONITOR_INTERVAL = 0.05
FIRST_BACKOFF, MAX_BACKOFF = 0.25, 30.0


def backoff(restarts_in_a_row: int) -> float:
    """Seconds to wait before the ``restarts_in_a_row``-th consecutive restart (from 1)."""
    return min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (restarts_in_a_row - 1))


class Supervisor:
    def __init__(
        self,
        settings: Settings,
        handles: list[WorkerHandle],
        transport: Transport,
        dispatcher: Dispatcher,
        launcher: Launcher,
    ) -> None:
        self.settings = settings
        self.handles = handles
        self.transport = transport
        self.dispatcher = dispatcher
        self.launcher = launcher
        self.keep_running = False  # start workers again when lost (off before start, on drain)

    def launch(self, handle: WorkerHandle) -> None:
        handle.generation += 1
        jobs = self.transport.open_jobs(handle)
        transport = self.transport
        handle.process = self.launcher(
            handle, jobs, transport.results_endpoint, transport.control_endpoint
        )
        handle.pid = handle.process.pid or None  # 0 while a fork server forks it
        handle.state = "starting"
        handle.spawned_at = time.monotonic()
        handle.last_beat = 0.0
        handle.restart_at = None

    def on_heartbeat(self, beat: Heartbeat) -> None:
        handle = next((h for h in self.handles if h.worker_id == beat.worker_id), None)
        if handle is None or beat.generation != handle.generation:
            return  # a previous incarnation's last words
        handle.record(beat)
        if handle.state not in ("starting", "loading", "ready", "draining"):
            return  # lost or stopped: the monitor decides what happens next
        became_ready = beat.state == "ready" and handle.state != "ready"
        handle.state = beat.state
        if became_ready:
            described = beat.model.description if beat.model else "no model"
            log.info("worker %s ready: %s", handle.worker_id, described)
            handle.ever_ready = True
            handle.restarts_in_a_row = 0
        self.dispatcher.dispatch_pending()  # a new worker, or one that offers more slots

    async def monitor(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            now = time.monotonic()
            for handle in self.handles:
                self.check(handle, now)

    def check(self, handle: WorkerHandle, now: float) -> None:
        settings = self.settings
        silent_limit = settings.heartbeat_timeout_seconds
        if handle.state == "restarting":
            if self.keep_running and handle.restart_at is not None and now >= handle.restart_at:
                self.launch(handle)
            return
        if handle.process is None:
            return
        code = handle.process.poll()
        if code is not None:
            self.lost(handle, f"exited with code {code}")
        elif handle.state == "ready" and now - handle.last_beat > silent_limit:
            self._kill(handle, f"sent no heartbeat for {silent_limit:g} s")
        elif (
            handle.state in ("starting", "loading")
            and now - handle.spawned_at > settings.worker_start_timeout_seconds
        ):
            self._kill(handle, f"did not load within {settings.worker_start_timeout_seconds:g} s")

    def _kill(self, handle: WorkerHandle, reason: str) -> None:
        assert handle.process is not None
        handle.process.kill()
        handle.process.wait()
        self.lost(handle, reason)

    def lost(self, handle: WorkerHandle, reason: str, restart: bool = True) -> None:
        """``handle``'s process is gone: fail its requests, and start it again after a pause."""
        if handle.process is None:
            return
        if self.keep_running:
            log.error("worker %s (pid %s) %s", handle.worker_id, handle.pid, reason)
        self.transport.close_jobs(handle)  # first: what it never got is counted, then failed
        self.dispatcher.fail_all(
            handle,
            f"the worker serving this request stopped ({reason}); the request was not "
            "completed, please retry",
        )
        handle.process = None
        if not (restart and self.keep_running):
            handle.state = "stopped"
            return
        handle.restarts += 1
        handle.restarts_in_a_row += 1
        handle.state = "restarting"
        handle.restart_at = time.monotonic() + backoff(handle.restarts_in_a_row)
        if not handle.error:
            handle.error = reason

    async def stop_all(self, timeout: float) -> None:
        """SIGTERM every worker, wait up to ``timeout`` for them to finish, kill the rest."""
        self.keep_running = False
        for handle in self.handles:
            if handle.process is not None and handle.alive:
                handle.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(h.alive for h in self.handles) and time.monotonic() < deadline:
            await asyncio.sleep(MONITOR_INTERVAL)
        for handle in self.handles:
            if handle.process is not None and handle.alive:
                log.warning(
                    "worker %s did not stop in %.0f s; killing it", handle.worker_id, timeout
                )
                handle.process.kill()
                await asyncio.to_thread(handle.process.wait)
            self.lost(handle, "the service is shutting down", restart=False)
