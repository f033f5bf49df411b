"""The worker pool: ZeroMQ sockets, load-aware dispatch, result routing, crash recovery.

Dispatch: each worker has its own job socket (PUSH here, PULL there) and the master counts each
worker's requests in flight, so a job goes to the worker with the most free slots and never
queues behind a busy one (a shared PUSH would deal jobs round-robin, busy or not). With no free
slot anywhere a request waits in a bounded queue, up to ``QUEUE_TIMEOUT_SECONDS``; beyond
``MAX_QUEUED_REQUESTS`` it is refused at once (503 with ``Retry-After``).

One receiver task reads every worker's results and routes them to the request they belong to;
a monitor task restarts a worker that exits or stops heartbeating, failing only its own
requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import zmq
import zmq.asyncio
from pydantic import ValidationError

from common.protocol import (
    Audio,
    Cancel,
    Credit,
    Done,
    Drain,
    Failed,
    Heartbeat,
    InvalidateVoice,
    Job,
    Started,
    TextPiece,
    _Message,
    decode_from_worker,
    encode,
)
from common.settings import Settings

from .streams import AudioChunk, Event, RequestStream
from .workers import Slot, WorkerHandle, plan_workers, spawn

log = logging.getLogger(__name__)
MONITOR_INTERVAL = 0.05


class PoolUnavailable(Exception):
    """No request can be taken now; ``str()`` says why, ``retry_after`` when to try again."""

    def __init__(self, message: str, retry_after: int, code: str = "overloaded") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


StreamObserver = Callable[[RequestStream, Event], None]


class WorkerPool:
    def __init__(self, settings: Settings, slots: list[Slot] | None = None) -> None:
        self.settings = settings
        self.handles = [
            WorkerHandle(slot, settings.concurrent_requests_per_worker)
            for slot in (slots if slots is not None else plan_workers(settings))
        ]
        self.streams: dict[str, RequestStream] = {}
        self.pending: deque[RequestStream] = deque()
        self.accepting = False
        self.draining = False
        self.in_use: set[str] = set()  # requests submitted and not yet released by their route
        self.observers: list[StreamObserver] = []  # see every event delivered (metrics)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="chatterbox-ipc-"))
        self.results_endpoint = f"ipc://{self.runtime_dir}/results"
        self.control_endpoint = f"ipc://{self.runtime_dir}/control"
        self.context = zmq.asyncio.Context()
        self.sync_context = zmq.Context()  # sends never wait: they use NOBLOCK on plain sockets
        self.results = self.context.socket(zmq.PULL)
        self.control = self.sync_context.socket(zmq.PUB)
        self._tasks: list[asyncio.Task[None]] = []

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self.results.bind(self.results_endpoint)
        self.control.bind(self.control_endpoint)
        for handle in self.handles:
            self._launch(handle)
        self.accepting = True
        self._tasks = [asyncio.create_task(self._receive()), asyncio.create_task(self._monitor())]

    def begin_drain(self) -> None:
        """Refuse new requests (503) while those in flight carry on."""
        self.accepting = False
        self.draining = True

    async def wait_drained(self, timeout: float) -> bool:
        """Wait until every submitted request has been released by its route; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.in_use and time.monotonic() < deadline:
            await asyncio.sleep(MONITOR_INTERVAL)
        return not self.in_use

    async def stop(self, timeout: float | None = None) -> None:
        """Refuse new work, let workers finish theirs (up to ``timeout``), stop them, clean up."""
        self.accepting = False
        timeout = self.settings.shutdown_timeout_seconds if timeout is None else timeout
        self._publish(Drain())
        for handle in self.handles:
            if handle.process is not None and handle.process.poll() is None:
                handle.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(self._alive(h) for h in self.handles) and time.monotonic() < deadline:
            await asyncio.sleep(MONITOR_INTERVAL)
        for task in self._tasks:
            task.cancel()
        for handle in self.handles:
            if self._alive(handle):
                log.warning(
                    "worker %s did not stop in %.0f s; killing it", handle.worker_id, timeout
                )
                assert handle.process is not None
                handle.process.kill()
                await asyncio.to_thread(handle.process.wait)
            self._lost(handle, "the service is shutting down", restart=False)
        self.context.destroy(linger=0)
        self.sync_context.destroy(linger=0)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    @staticmethod
    def _alive(handle: WorkerHandle) -> bool:
        return handle.process is not None and handle.process.poll() is None

    def _launch(self, handle: WorkerHandle) -> None:
        handle.generation += 1
        endpoint = f"ipc://{self.runtime_dir}/jobs-{handle.worker_id}-{handle.generation}"
        handle.jobs = self.sync_context.socket(zmq.PUSH)
        handle.jobs.setsockopt(zmq.LINGER, 0)
        handle.jobs.bind(endpoint)
        handle.process = spawn(handle, endpoint, self.results_endpoint, self.control_endpoint)
        handle.pid = handle.process.pid
        handle.state = "starting"
        handle.spawned_at = time.monotonic()
        handle.last_beat = 0.0
        handle.restart_at = None

    # --- readiness ----------------------------------------------------------------------------

    def readiness(self) -> tuple[bool, str]:
        """(ready, reason): ready once every worker has loaded and one can take requests."""
        if not self.accepting:
            return False, "the service is shutting down"
        waiting = [h for h in self.handles if not h.ever_ready]
        if waiting:
            states = ", ".join(f"{h.worker_id}: {h.error or h.state}" for h in waiting)
            return False, f"{len(waiting)} of {len(self.handles)} workers not ready ({states})"
        if not any(h.state == "ready" for h in self.handles):
            return False, "every worker is restarting"
        return True, f"{len(self.handles)} workers ready"

    # --- requests -----------------------------------------------------------------------------

    async def submit(self, stream: RequestStream) -> None:
        """Give ``stream`` to the least-loaded ready worker, waiting in the queue if need be."""
        if not self.accepting:
            raise PoolUnavailable(
                "the service is shutting down", self.settings.retry_after_seconds, "worker_draining"
            )
        if not any(h.state == "ready" for h in self.handles):
            raise PoolUnavailable(
                self.readiness()[1], self.settings.retry_after_seconds, "not_ready"
            )
        stream.on_consumed = self._credit
        self.streams[stream.request_id] = stream
        self.in_use.add(stream.request_id)
        if (handle := self._pick()) is not None:
            self._assign(stream, handle)
            return
        if len(self.pending) >= self.settings.max_queued_requests:
            del self.streams[stream.request_id]
            self.in_use.discard(stream.request_id)
            raise PoolUnavailable(
                f"all {self.capacity} synthesis slots are busy and "
                f"{len(self.pending)} requests are already queued; retry shortly",
                self.settings.retry_after_seconds,
            )
        self.pending.append(stream)
        try:
            await asyncio.wait_for(stream.assigned.wait(), self.settings.queue_timeout_seconds)
        except BaseException as error:
            self._withdraw(stream)
            if isinstance(error, TimeoutError):
                raise PoolUnavailable(
                    f"no synthesis slot freed up within {self.settings.queue_timeout_seconds:g} s",
                    self.settings.retry_after_seconds,
                ) from None
            raise

    @property
    def capacity(self) -> int:
        return sum(h.capacity for h in self.handles)

    def send_text(self, stream: RequestStream, piece: TextPiece) -> None:
        if stream.worker_id is None:
            stream.unsent_text.append(piece)
        else:
            self._send_to(stream.worker_id, piece)

    def release(self, stream: RequestStream) -> None:
        """The route is done with ``stream``: cancel the work if it has not finished."""
        stream.on_consumed = None
        self.in_use.discard(stream.request_id)
        if stream.finished:
            return
        if stream.worker_id is None:
            self._withdraw(stream)
        else:
            self._publish(Cancel(request_id=stream.request_id))

    def voice_changed(
        self, voice_id: str, clip: str | None = None, content_hash: str | None = None
    ) -> None:
        """Tell every worker: drop ``voice_id``'s conditioning (and warm the new clip, if any)."""
        self._publish(InvalidateVoice(voice_id=voice_id, voice_path=clip, voice_hash=content_hash))

    def describe_workers(self) -> list[dict[str, object]]:
        return [h.describe() for h in self.handles]

    def _pick(self) -> WorkerHandle | None:
        free = [h for h in self.handles if h.free_slots > 0]
        if not free:
            return None
        return max(free, key=lambda h: (h.free_slots, -h.last_assigned))

    def _assign(self, stream: RequestStream, handle: WorkerHandle) -> None:
        handle.active.add(stream.request_id)
        handle.last_assigned = time.monotonic()
        stream.worker_id = handle.worker_id
        job = Job(
            request_id=stream.request_id,
            text=stream.text,
            params=stream.params,
            voice_id=stream.voice_id,
            voice_path=stream.voice_path,
            voice_hash=stream.voice_hash,
            credit=self.settings.stream_credit_chunks,
        )
        self._send(handle, job)
        for piece in stream.unsent_text:
            self._send(handle, piece)
        stream.unsent_text.clear()
        stream.assigned.set()

    def _withdraw(self, stream: RequestStream) -> None:
        self.in_use.discard(stream.request_id)
        with contextlib.suppress(ValueError):
            self.pending.remove(stream)
        if stream.worker_id is None:
            self.streams.pop(stream.request_id, None)

    def _dispatch_pending(self) -> None:
        while self.pending and (handle := self._pick()) is not None:
            self._assign(self.pending.popleft(), handle)

    def _credit(self, stream: RequestStream) -> None:
        if stream.worker_id is not None and not stream.finished:
            self._send_to(stream.worker_id, Credit(request_id=stream.request_id))

    # --- sockets ------------------------------------------------------------------------------

    def _send_to(self, worker_id: str, message: _Message) -> None:
        for handle in self.handles:
            if handle.worker_id == worker_id:
                self._send(handle, message)

    @staticmethod
    def _send(handle: WorkerHandle, message: _Message) -> None:
        if handle.jobs is None:
            return
        try:
            handle.jobs.send_multipart(encode(message), flags=zmq.NOBLOCK)
        except zmq.Again:  # the worker stopped reading: the monitor deals with it
            log.warning("worker %s is not taking messages", handle.worker_id)

    def _publish(self, message: _Message) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.control.send_multipart(encode(message), flags=zmq.NOBLOCK)

    async def _receive(self) -> None:
        while True:
            frames = await self.results.recv_multipart()
            try:
                message, payload = decode_from_worker(frames)
            except ValidationError as error:
                log.error("unreadable message from a worker: %s", error)
                continue
            if isinstance(message, Heartbeat):
                self._on_heartbeat(message)
            elif isinstance(message, Audio):
                self._deliver(message.request_id, AudioChunk(message.seq, payload or b""))
            else:
                self._deliver(message.request_id, message)

    def _deliver(self, request_id: str, event: AudioChunk | Started | Done | Failed) -> None:
        stream = self.streams.get(request_id)
        if isinstance(event, Done | Failed):
            self.streams.pop(request_id, None)
            for handle in self.handles:
                handle.active.discard(request_id)
            self._dispatch_pending()
        if stream is not None:
            stream.deliver(event)
            for observe in self.observers:
                observe(stream, event)

    def _on_heartbeat(self, beat: Heartbeat) -> None:
        handle = next((h for h in self.handles if h.worker_id == beat.worker_id), None)
        if handle is None or beat.generation != handle.generation:
            return  # a previous incarnation's last words
        handle.last_beat = time.monotonic()
        handle.pid, handle.model, handle.variant = beat.pid, beat.model, beat.variant
        handle.cached_voices = beat.cached_voices
        if beat.error or beat.state == "ready":
            handle.error = beat.error
        if handle.state in ("starting", "loading", "ready", "draining"):
            became_ready = beat.state == "ready" and handle.state != "ready"
            handle.state = beat.state
            if became_ready:
                log.info("worker %s ready: %s", handle.worker_id, beat.model)
                handle.ever_ready = True
                handle.restarts_in_a_row = 0
                self._dispatch_pending()

    # --- crash recovery -----------------------------------------------------------------------

    async def _monitor(self) -> None:
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            now = time.monotonic()
            for handle in self.handles:
                self._check(handle, now)

    def _check(self, handle: WorkerHandle, now: float) -> None:
        settings = self.settings
        silent_limit = settings.heartbeat_timeout_seconds
        if handle.state == "restarting":
            if self.accepting and handle.restart_at is not None and now >= handle.restart_at:
                self._launch(handle)
            return
        if handle.process is None:
            return
        code = handle.process.poll()
        if code is not None:
            self._lost(handle, f"exited with code {code}")
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
        self._lost(handle, reason)

    def _lost(self, handle: WorkerHandle, reason: str, restart: bool = True) -> None:
        """``handle``'s process is gone: fail its requests, and start it again after a pause."""
        if handle.process is None:
            return
        if self.accepting:
            log.error("worker %s (pid %s) %s", handle.worker_id, handle.pid, reason)
        message = (
            f"the worker serving this request stopped ({reason}); the request was not "
            "completed, please retry"
        )
        for request_id in list(handle.active):
            self._deliver(
                request_id, Failed(request_id=request_id, code="worker_crashed", message=message)
            )
        handle.active.clear()
        if handle.jobs is not None:
            handle.jobs.close(linger=0)
            handle.jobs = None
        handle.process = None
        if not (restart and self.accepting):
            handle.state = "stopped"
            return
        handle.restarts += 1
        handle.restarts_in_a_row += 1
        delay = min(30.0, 0.25 * 2 ** (handle.restarts_in_a_row - 1))
        handle.state = "restarting"
        handle.restart_at = time.monotonic() + delay
        if not handle.error:
            handle.error = reason
