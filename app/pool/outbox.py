"""What the master sends one worker, in order of urgency, waiting rather than dropping.

A worker reads its job socket in order, so whatever sits in the socket delays what comes after
it. The outbox keeps little there (ZeroMQ's high-water mark, :data:`JOB_QUEUE_MESSAGES`, on
both ends) and picks what goes next itself: control messages first (:class:`Job`,
:class:`Cancel`, :class:`Credit`), then text, one piece per request in turn. While the socket is
full (the worker is busy or stopped) the sender waits; the text behind it waits in each
request's :class:`PendingText`, whose bound pushes back on that request's client alone.

How long a Job can wait behind other requests' traffic: at most the messages already in the
pipe (twice :data:`JOB_QUEUE_MESSAGES`, each a client's message of at most the WebSocket frame
size) plus one text piece, read by a worker whose loop does no text work (see
``worker.job``). Control messages are bounded by design: one Job and at most one Cancel per
request, and a Credit per audio chunk the client has read, of which the worker may have at most
``STREAM_CREDIT_CHUNKS`` unanswered.

When the worker is lost, what was not sent is discarded with its requests, which the supervisor
fails (``worker_crashed``, a 503 to a client still waiting): :meth:`Outbox.close` counts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

import zmq.asyncio

from common.protocol import Cancel, Credit, Job, encode

from .pending_text import PendingText

Control = Job | Cancel | Credit
log = logging.getLogger(__name__)


class Outbox:
    """One worker's sender: ``socket`` is its job socket, written by this outbox alone."""

    def __init__(self, socket: zmq.asyncio.Socket) -> None:
        self.socket = socket
        self.control: deque[tuple[Control, bytes | None]] = deque()
        self.texts: deque[PendingText] = deque()  # requests with text to send, each once
        self.sent = 0
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        self._task.add_done_callback(_report_failure)

    def send(self, message: Control, payload: bytes | None = None) -> None:
        """Queue a control message (a voice conversion's Job carries its source as
        ``payload``, the message's second frame)."""
        self.control.append((message, payload))
        self._wake.set()

    def text_ready(self, pending: PendingText) -> None:
        """``pending`` has text to send: it takes its turn after the requests already waiting."""
        if not pending.queued:
            pending.queued = True
            self.texts.append(pending)
            self._wake.set()

    def close(self) -> int:
        """Stop sending and close the socket; the number of messages that were not sent."""
        self._task.cancel()
        self.socket.close(linger=0)
        unsent = len(self.control) + sum(len(p) for p in self.texts)
        for pending in self.texts:
            pending.discard()
        self.control.clear()
        self.texts.clear()
        return unsent

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (frames := self._next()) is not None:
                await self.socket.send_multipart(frames, copy=False)
                self.sent += 1

    def _next(self) -> list[bytes] | None:
        if self.control:
            return encode(*self.control.popleft())
        while self.texts:
            pending = self.texts.popleft()
            piece = pending.take()
            if pending:
                self.texts.append(pending)
            else:
                pending.queued = False
            if piece is not None:
                return encode(piece)
        return None


def _report_failure(task: asyncio.Task[None]) -> None:
    """A sender that stopped other than by :meth:`Outbox.close` leaves its worker's requests
    waiting until the supervisor finds the worker silent: say why, once."""
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("a worker's outbox stopped sending: %s", error)
