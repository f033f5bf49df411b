"""A worker process's event loop: ZeroMQ sockets in, engine jobs, results and heartbeats out.

The worker connects to the sockets the master bound (see ``common.protocol`` for the channels):
it pulls its own jobs, subscribes to control, and pushes results and a heartbeat every
``HEARTBEAT_INTERVAL_SECONDS`` (also while the model loads, so the master can tell loading from
hung). It keeps serving until the master drains it or the process is terminated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import parent_process
from typing import TypeVar

import zmq
import zmq.asyncio
from pydantic import ValidationError

from common.protocol import (
    JOB_QUEUE_MESSAGES,
    Cancel,
    Credit,
    Drain,
    Failed,
    Heartbeat,
    InvalidateVoice,
    Job,
    Message,
    ModelInfo,
    ReportedState,
    TextPiece,
    decode_control,
    decode_to_worker,
    encode,
    source_of,
)
from common.voices.library import VoiceLibrary

from .engine.model.loading import LoadedModel
from .engine.pipeline import StreamingEngine
from .job import JobRun
from .memory import release_free_memory
from .voice_cache import VoiceCache

log = logging.getLogger(__name__)
M = TypeVar("M")
TRIM_INTERVAL_SECONDS = 30.0  # a trim takes ~10 ms (in a thread) on a worker of a few GB


@dataclass(frozen=True)
class Endpoints:
    """Where the master's sockets are bound."""

    jobs: str
    results: str
    control: str


class WorkerService:
    def __init__(
        self,
        worker_id: str,
        generation: int,
        endpoints: Endpoints,
        heartbeat_interval: float,
        device: str,
        library: VoiceLibrary | None = None,
        voice_cache_size: int = 32,
        precache: bool = False,
    ) -> None:
        self.library = library
        self.voice_cache_size = voice_cache_size
        self.precache = precache and library is not None
        self.worker_id = worker_id
        self.generation = generation
        self.capacity = 0  # the engine's slots, once it is loaded
        self.heartbeat_interval = heartbeat_interval
        self.device = device
        self.state: ReportedState = "starting"
        self.error = ""
        self.model: ModelInfo | None = None  # once loaded
        self.engine: StreamingEngine | None = None
        self.voices: VoiceCache | None = None
        self.runs: dict[str, JobRun] = {}
        self.context = zmq.asyncio.Context()
        self.jobs = self._socket(zmq.PULL, endpoints.jobs, JOB_QUEUE_MESSAGES)
        self.results = self._socket(zmq.PUSH, endpoints.results)
        self.control = self._socket(zmq.SUB, endpoints.control)
        self.control.setsockopt(zmq.SUBSCRIBE, b"")
        self._send_lock = asyncio.Lock()
        self._stopped = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    def _socket(self, kind: int, endpoint: str, hwm: int | None = None) -> zmq.asyncio.Socket:
        socket = self.context.socket(kind)
        socket.setsockopt(zmq.LINGER, 1000)
        if hwm is not None:
            socket.setsockopt(zmq.RCVHWM, hwm)
        socket.connect(endpoint)
        return socket

    async def serve(self, load: Callable[[], StreamingEngine]) -> int:
        """Load the model (heartbeating meanwhile), then serve until drained; the exit code."""
        beating = asyncio.create_task(self._heartbeats())
        try:
            self.state = "loading"
            await self._beat()
            try:
                self.engine = await asyncio.get_running_loop().run_in_executor(None, load)
            except Exception as error:  # reported to the master, which shows it on /ready
                log.exception("model load failed")
                self.state, self.error = "failed", str(error) or type(error).__name__
                await self._beat()
                return 3
            self.capacity = self.engine.slots
            self.voices = VoiceCache(self.engine.model, self.voice_cache_size)
            if self.precache:
                await self._precache()
            self.model = model_info(self.engine.model)
            if self._stopped.is_set():  # told to stop while loading
                return 0
            self.state = "ready"
            await self._beat()
            listeners = [self._listen_jobs(), self._listen_control(), self._trim_memory()]
            tasks = [asyncio.create_task(c) for c in listeners]
            await self._stopped.wait()
            for task in tasks:
                task.cancel()
            return 0
        finally:
            beating.cancel()
            for task in self._background:
                task.cancel()
            await asyncio.gather(beating, *self._background, return_exceptions=True)
            self.context.destroy(linger=1000)

    async def send(self, message: Message, payload: bytes | None = None) -> None:
        async with self._send_lock:  # one multipart message at a time on the shared socket
            await self.results.send_multipart(encode(message, payload), copy=False)

    async def _beat(self) -> None:
        await self.send(
            Heartbeat(
                worker_id=self.worker_id,
                generation=self.generation,
                pid=os.getpid(),
                state=self.state,
                device=self.device,
                capacity=self.capacity,
                active=len(self.runs),
                model=self.model,
                error=self.error,
                cached_voices=self.voices.voice_ids if self.voices else [],
            )
        )

    async def _heartbeats(self) -> None:
        """Beat until the master is gone (killed), then exit: nobody is left to serve.

        A worker started as a subprocess is the master's child. A forked worker's parent is the
        fork server, which may die while the master lives on (its workers carry on): it watches
        the master itself, through the pipe multiprocessing keeps to it from the master.
        """
        forked_from = parent_process()  # the master, for a forked worker; else None
        master = forked_from.pid if forked_from is not None else os.getppid()
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            alive = forked_from.is_alive() if forked_from else os.getppid() == master
            if not alive:
                log.warning("master process %s is gone; exiting", master)
                os._exit(1)
            await self._beat()

    async def _trim_memory(self) -> None:
        """Hand freed memory back to the system now and then (see worker/memory.py)."""
        while True:
            await asyncio.sleep(TRIM_INTERVAL_SECONDS)
            await asyncio.to_thread(release_free_memory)

    async def _listen_jobs(self) -> None:
        """Read the job socket as fast as it fills: nothing here waits or works on text (a
        run's text is cut off the loop), so a Job never waits behind another request's text."""
        while True:
            frames = await self.jobs.recv_multipart()
            message = _readable(decode_to_worker, frames)
            if message is None:
                continue
            if isinstance(message, Job):
                self._start(message, frames)
            elif (run := self.runs.get(message.request_id)) is None:
                continue  # the job has ended (cancelled or failed): late text, credit or cancel
            elif isinstance(message, TextPiece):
                run.add_text(message)
            elif isinstance(message, Credit):
                run.add_credit(message.chunks)
            elif isinstance(message, Cancel) and run.task is not None:
                run.task.cancel()

    async def _listen_control(self) -> None:
        while True:
            message = _readable(decode_control, await self.control.recv_multipart())
            if message is None:
                continue
            if isinstance(message, InvalidateVoice) and self.voices is not None:
                self.voices.invalidate(message.voice_id)
                if self.precache and message.voice_path and message.voice_hash:
                    self._warm(message.voice_id, message.voice_path, message.voice_hash)
            elif isinstance(message, Drain):
                self._drain()

    def _start(self, job: Job, frames: list[bytes]) -> None:
        request_id = job.request_id
        try:
            source = source_of(job, frames)
        except ValueError as error:  # a master of another version
            log.error("%s", error)
            self._reply_later(Failed(request_id=request_id, code="internal_error",
                                     message="the source audio did not arrive whole"))  # fmt: skip
            return
        if self.state != "ready":
            message = "this worker is shutting down; retry the request"
            self._reply_later(
                Failed(request_id=request_id, code="worker_draining", message=message)
            )
            return
        assert self.engine is not None and self.voices is not None
        run = JobRun(job, self.engine, self.voices, self.send, self.worker_id, source)
        self.runs[request_id] = run
        run.task = asyncio.create_task(run.run())
        run.task.add_done_callback(lambda _: self._finished(run))

    async def _precache(self) -> None:
        """Prepare every voice of the library before taking requests (PRECACHE_VOICES)."""
        assert self.voices is not None and self.library is not None
        for voice in self.library.voices()[: self.voice_cache_size]:
            try:
                clip, digest = await asyncio.to_thread(self.library.prepared_clip, voice)
                await self.voices.get(voice.voice_id, str(clip), digest)
            except Exception as error:  # one bad file must not keep the worker from serving
                log.warning("could not pre-cache voice %s: %s", voice.voice_id, error)

    def _warm(self, voice_id: str, clip: str, digest: str) -> None:
        assert self.voices is not None
        task = asyncio.create_task(self._warm_one(voice_id, clip, digest))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _warm_one(self, voice_id: str, clip: str, digest: str) -> None:
        assert self.voices is not None
        try:
            await self.voices.get(voice_id, clip, digest)
        except Exception as error:
            log.warning("could not warm voice %s: %s", voice_id, error)

    def _reply_later(self, message: Message) -> None:
        task = asyncio.create_task(self.send(message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _finished(self, run: JobRun) -> None:
        self.runs.pop(run.job.request_id, None)
        if not run.reported:  # cancelled, possibly before it started: the master still waits
            self._reply_later(run.done(cancelled=True))
        if self.state == "draining" and not self.runs:
            self._stopped.set()

    def _drain(self) -> None:
        if self.state == "draining" or self._stopped.is_set():
            return  # both a Drain message and SIGTERM arrive on a normal shutdown
        log.info("draining: %d request(s) in flight", len(self.runs))
        self.state = "draining"
        task = asyncio.create_task(self._beat())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if not self.runs:
            self._stopped.set()


def model_info(model: LoadedModel) -> ModelInfo:
    """What the heartbeat says of the loaded model."""
    return ModelInfo(
        description=model.describe(),
        variant=model.variant.value,
        label=model.choice.label,
        repo_id=model.choice.files.repo_id,
    )


def _readable(decode: Callable[[list[bytes]], M], frames: list[bytes]) -> M | None:
    """The message, or None for one this worker cannot read (a master of another version): it
    is logged and skipped, where it would have ended the listener and left requests waiting."""
    try:
        return decode(frames)
    except ValidationError as error:
        log.error("unreadable message from the master: %s", error)
        return None


async def run_until_signal(service: WorkerService, load: Callable[[], StreamingEngine]) -> int:
    """Serve; SIGTERM drains like a Drain message (the master's own shutdown path)."""
    import signal

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGTERM, service._drain)
        loop.add_signal_handler(signal.SIGINT, service._drain)
    return await service.serve(load)
