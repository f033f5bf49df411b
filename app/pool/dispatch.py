"""Dispatch: which worker gets a request, the queue for when none has a free slot, and routing
each result back to the request it belongs to.

Each worker has its own job socket and the master counts each worker's requests in flight, so a
job goes to the ready worker with the most free slots (ties: the one assigned least recently)
and never queues behind a busy one; a shared PUSH would deal jobs round-robin, busy or not. A
worker's slots are what its heartbeat offers. With no free slot anywhere a request waits in a
FIFO queue, up to ``QUEUE_TIMEOUT_SECONDS``; beyond ``MAX_QUEUED_REQUESTS`` it is refused at once.

Everything for a worker goes through its :class:`~.outbox.Outbox`; a streaming request's text
waits in its :class:`~.pending_text.PendingText` (from before it has a worker, too), where a
client that sends faster than its worker takes text is held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from common.protocol import Cancel, Credit, Done, Failed, Job, TextPiece
from common.settings import Settings

from .pending_text import PendingText
from .streams import Event, RequestStream
from .transport import Transport
from .workers import WorkerHandle

StreamObserver = Callable[[RequestStream, Event], None]


class PoolUnavailable(Exception):
    """No request can be taken now; ``str()`` says why, ``retry_after`` when to try again."""

    def __init__(
        self,
        message: str,
        retry_after: int,
        code: Literal["overloaded", "not_ready", "worker_draining"] = "overloaded",
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code


class Dispatcher:
    def __init__(
        self, settings: Settings, handles: list[WorkerHandle], transport: Transport
    ) -> None:
        self.settings = settings
        self.handles = handles
        self.transport = transport
        self.streams: dict[str, RequestStream] = {}
        self.pending: deque[RequestStream] = deque()
        self.in_use: set[str] = set()  # requests submitted and not yet released by their route
        self.texts: dict[str, PendingText] = {}  # the text of requests in use, not yet sent
        self.observers: list[StreamObserver] = []  # see every event delivered (metrics)

    @property
    def capacity(self) -> int:
        return sum(h.capacity for h in self.handles)

    async def submit(self, stream: RequestStream) -> None:
        """Give ``stream`` to the least-loaded ready worker, waiting in the queue if need be."""
        stream.on_consumed = self._credit
        self.streams[stream.request_id] = stream
        self.in_use.add(stream.request_id)
        self.texts[stream.request_id] = PendingText()
        if (handle := self._pick()) is not None:
            self._assign(stream, handle)
            return
        if len(self.pending) >= self.settings.max_queued_requests:
            self._withdraw(stream)
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

    async def send_text(self, stream: RequestStream, piece: TextPiece) -> None:
        """Queue ``piece`` for the request's worker, first waiting while its text not yet sent
        is at the bound (backpressure on this request's client alone). Text for a request that
        has ended goes nowhere: its client is told how it ended."""
        pending = self.texts.get(stream.request_id)
        if pending is None or stream.finished:
            return
        await pending.wait_for_room()
        pending.add(piece)
        handle = self._handle(stream.worker_id) if stream.worker_id is not None else None
        if handle is not None and handle.outbox is not None:
            handle.outbox.text_ready(pending)

    def release(self, stream: RequestStream) -> None:
        """The route is done with ``stream``: cancel the work if it has not finished."""
        stream.on_consumed = None
        self.in_use.discard(stream.request_id)
        if (pending := self.texts.pop(stream.request_id, None)) is None:
            return  # released before
        pending.discard()
        if stream.finished:
            return
        if stream.worker_id is None:
            self._withdraw(stream)
        else:
            self._send(stream.worker_id, Cancel(request_id=stream.request_id))

    def deliver(self, request_id: str, event: Event) -> None:
        stream = self.streams.get(request_id)
        if isinstance(event, Done | Failed):
            self.streams.pop(request_id, None)
            if (pending := self.texts.get(request_id)) is not None:
                pending.discard()  # the worker would ignore it
            for handle in self.handles:
                handle.active.discard(request_id)
            self.dispatch_pending()
        if stream is not None:
            stream.deliver(event)
            for observe in self.observers:
                observe(stream, event)

    def fail_all(self, handle: WorkerHandle, message: str) -> None:
        """End every request ``handle`` was serving with ``worker_crashed``."""
        for request_id in list(handle.active):
            failed = Failed(request_id=request_id, code="worker_crashed", message=message)
            self.deliver(request_id, failed)
        handle.active.clear()

    def dispatch_pending(self) -> None:
        while self.pending and (handle := self._pick()) is not None:
            self._assign(self.pending.popleft(), handle)

    def _pick(self) -> WorkerHandle | None:
        free = [h for h in self.handles if h.free_slots > 0]
        if not free:
            return None
        return max(free, key=lambda h: (h.free_slots, -h.last_assigned))

    def _handle(self, worker_id: str) -> WorkerHandle | None:
        return next((h for h in self.handles if h.worker_id == worker_id), None)

    def _assign(self, stream: RequestStream, handle: WorkerHandle) -> None:
        handle.active.add(stream.request_id)
        handle.last_assigned = time.monotonic()
        stream.worker_id = handle.worker_id
        assert handle.outbox is not None  # a ready worker has one
        handle.outbox.send(stream.job(self.settings.stream_credit_chunks), stream.source)
        if pending := self.texts.get(stream.request_id):
            handle.outbox.text_ready(pending)
        stream.assigned.set()

    def _withdraw(self, stream: RequestStream) -> None:
        self.in_use.discard(stream.request_id)
        if (pending := self.texts.pop(stream.request_id, None)) is not None:
            pending.discard()
        with contextlib.suppress(ValueError):
            self.pending.remove(stream)
        if stream.worker_id is None:
            self.streams.pop(stream.request_id, None)

    def _credit(self, stream: RequestStream) -> None:
        if stream.worker_id is not None and not stream.finished:
            self._send(stream.worker_id, Credit(request_id=stream.request_id))

    def _send(self, worker_id: str, message: Job | Cancel | Credit) -> None:
        """Queue a control message; none is needed for a worker that is gone (its requests
        were failed when it was lost)."""
        handle = self._handle(worker_id)
        if handle is not None and handle.outbox is not None:
            handle.outbox.send(message)
