"""The master's ZeroMQ sockets: one job socket per worker, the shared results and control.

All are ``ipc://`` endpoints in a private temporary directory (removed on close); the master
binds, the workers connect. A worker's job socket is written by its :class:`Outbox`, which waits
while the worker is not reading (a worker that stopped for good is the supervisor's business:
its heartbeats stop) and never drops a message; control broadcasts (:class:`InvalidateVoice`,
:class:`Drain`) never wait.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

import zmq
import zmq.asyncio
from pydantic import ValidationError

from common.protocol import JOB_QUEUE_MESSAGES, FromWorker, Message, decode_from_worker, encode

from .outbox import Outbox
from .workers import WorkerHandle

log = logging.getLogger(__name__)


class Transport:
    def __init__(self) -> None:
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="chatterbox-ipc-"))
        self.results_endpoint = f"ipc://{self.runtime_dir}/results"
        self.control_endpoint = f"ipc://{self.runtime_dir}/control"
        self.context = zmq.asyncio.Context()
        self.sync_context = zmq.Context()  # for broadcasts, which use NOBLOCK on plain sockets
        self.undelivered = 0  # messages discarded with a lost worker (their requests failed)
        self.results = self.context.socket(zmq.PULL)
        self.control = self.sync_context.socket(zmq.PUB)
        # Nothing left unsent is worth waiting for at close, and a context collected without
        # close() (a pool never started) must not hang in it either.
        for socket in (self.results, self.control):
            socket.setsockopt(zmq.LINGER, 0)

    def bind(self) -> None:
        self.results.bind(self.results_endpoint)
        self.control.bind(self.control_endpoint)

    def open_jobs(self, handle: WorkerHandle) -> str:
        """A fresh job socket and outbox for ``handle``'s current generation; its endpoint."""
        self.close_jobs(handle)
        endpoint = f"ipc://{self.runtime_dir}/jobs-{handle.worker_id}-{handle.generation}"
        socket = self.context.socket(zmq.PUSH)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.SNDHWM, JOB_QUEUE_MESSAGES)
        socket.bind(endpoint)
        handle.outbox = Outbox(socket)
        return endpoint

    def close_jobs(self, handle: WorkerHandle) -> None:
        """Stop sending to ``handle`` (its worker is gone); what was not sent is counted."""
        if handle.outbox is None:
            return
        unsent = handle.outbox.close()
        handle.outbox = None
        if unsent:
            self.undelivered += unsent
            log.warning(
                "worker %s: %d message(s) not delivered; their requests were failed",
                handle.worker_id,
                unsent,
            )

    def publish(self, message: Message) -> None:
        with contextlib.suppress(zmq.ZMQError):
            self.control.send_multipart(encode(message), flags=zmq.NOBLOCK)

    async def receive(self) -> tuple[FromWorker, bytes | None]:
        """The next readable message from any worker (unreadable ones are logged and skipped)."""
        while True:
            frames = await self.results.recv_multipart()
            try:
                return decode_from_worker(frames)
            except ValidationError as error:
                log.error("unreadable message from a worker: %s", error)

    def close(self) -> None:
        self.context.destroy(linger=0)
        self.sync_context.destroy(linger=0)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
