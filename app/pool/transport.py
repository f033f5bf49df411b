"""The master's ZeroMQ sockets: one job socket per worker, the shared results and control.

All are ``ipc://`` endpoints in a private temporary directory (removed on close); the master
binds, the workers connect. Sends never wait: a worker that stopped reading is the supervisor's
business (its heartbeats stop), not a reason to block the event loop.
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

from common.protocol import FromWorker, Message, decode_from_worker, encode

from .workers import WorkerHandle

log = logging.getLogger(__name__)


class Transport:
    def __init__(self) -> None:
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="chatterbox-ipc-"))
        self.results_endpoint = f"ipc://{self.runtime_dir}/results"
        self.control_endpoint = f"ipc://{self.runtime_dir}/control"
        self.context = zmq.asyncio.Context()
        self.sync_context = zmq.Context()  # for sends, which use NOBLOCK on plain sockets
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
        """A fresh job socket for ``handle``'s current generation; its endpoint."""
        endpoint = f"ipc://{self.runtime_dir}/jobs-{handle.worker_id}-{handle.generation}"
        handle.jobs = self.sync_context.socket(zmq.PUSH)
        handle.jobs.setsockopt(zmq.LINGER, 0)
        handle.jobs.bind(endpoint)
        return endpoint

    @staticmethod
    def close_jobs(handle: WorkerHandle) -> None:
        if handle.jobs is not None:
            handle.jobs.close(linger=0)
            handle.jobs = None

    @staticmethod
    def send(handle: WorkerHandle, message: Message) -> None:
        if handle.jobs is None:
            return
        try:
            handle.jobs.send_multipart(encode(message), flags=zmq.NOBLOCK)
        except zmq.Again:  # the worker stopped reading: the supervisor deals with it
            log.warning("worker %s is not taking messages", handle.worker_id)

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
