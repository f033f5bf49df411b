"""Stand-in workers for testing the pool in process: the real protocol over real ZeroMQ
sockets, no model. A fake answers each job with ``Started``, a few audio chunks and ``Done``,
or holds it until it is cancelled; it can crash or fall silent on request."""

from __future__ import annotations

import asyncio
import itertools
import signal
from dataclasses import dataclass, field

import zmq
import zmq.asyncio

from app.pool.workers import WorkerHandle
from common.protocol import (
    JOB_QUEUE_MESSAGES,
    Audio,
    Cancel,
    Done,
    Heartbeat,
    Job,
    ModelInfo,
    ReportedState,
    Started,
    ToWorker,
    decode_control,
    decode_to_worker,
    encode,
)

_pids = itertools.count(90000)
FAKE_MODEL = ModelInfo(
    description="fake", variant="chatterbox", label="chatterbox", repo_id="ResembleAI/chatterbox"
)


@dataclass
class Behaviour:
    """How the fakes of one worker id behave (the same across its restarts)."""

    capacity: int = 2
    hold: bool = True  # keep each job until it is cancelled, instead of finishing it
    chunks: int = 3
    beat_interval: float = 0.02


@dataclass
class FakeWorker:
    worker_id: str
    generation: int
    behaviour: Behaviour
    endpoints: tuple[str, str, str]  # jobs, results, control
    silent: bool = False  # stop heartbeating (a hung worker)
    jobs_seen: list[str] = field(default_factory=list)
    received: list[ToWorker] = field(default_factory=list)  # every job-socket message, in order
    reading: asyncio.Event = field(default_factory=asyncio.Event)  # clear: a stalled loop
    running: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def run(self) -> None:
        context = zmq.asyncio.Context()
        jobs_endpoint, results_endpoint, control_endpoint = self.endpoints
        self.jobs = context.socket(zmq.PULL)
        self.jobs.setsockopt(zmq.RCVHWM, JOB_QUEUE_MESSAGES)  # as the real worker's
        self.jobs.connect(jobs_endpoint)
        self.reading.set()
        self.results = context.socket(zmq.PUSH)
        self.results.connect(results_endpoint)
        control = context.socket(zmq.SUB)
        control.setsockopt(zmq.SUBSCRIBE, b"")
        control.connect(control_endpoint)
        tasks = [
            asyncio.create_task(t) for t in (self._beat(), self._jobs(), self._control(control))
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in [*tasks, *self.running.values()]:
                task.cancel()
            context.destroy(linger=0)

    async def _beat(self, state: ReportedState = "ready") -> None:
        while True:
            if not self.silent:
                beat = Heartbeat(
                    worker_id=self.worker_id, generation=self.generation, pid=0, state=state,
                    device="cpu", capacity=self.behaviour.capacity, active=len(self.running),
                    model=FAKE_MODEL,
                )  # fmt: skip
                await self.results.send_multipart(encode(beat))
            await asyncio.sleep(self.behaviour.beat_interval)

    async def _jobs(self) -> None:
        while True:
            await self.reading.wait()
            message = decode_to_worker(await self.jobs.recv_multipart())
            self.received.append(message)
            if isinstance(message, Job):
                self.jobs_seen.append(message.request_id)
                task = asyncio.create_task(self._serve(message.request_id))
                self.running[message.request_id] = task
            elif isinstance(message, Cancel) and message.request_id in self.running:
                self.running.pop(message.request_id).cancel()
                await self._done(message.request_id, cancelled=True)

    async def _control(self, control: zmq.asyncio.Socket) -> None:
        while True:
            decode_control(await control.recv_multipart())  # drains and invalidations: no-ops

    async def _serve(self, request_id: str) -> None:
        started = Started(request_id=request_id, worker_id=self.worker_id, sample_rate=24000)
        await self.results.send_multipart(encode(started))
        for seq in range(self.behaviour.chunks):
            await self.results.send_multipart(
                encode(Audio(request_id=request_id, seq=seq), b"\0\0")
            )
        if self.behaviour.hold:
            await asyncio.Event().wait()
        self.running.pop(request_id, None)
        await self._done(request_id, cancelled=False)

    async def _done(self, request_id: str, cancelled: bool) -> None:
        done = Done(
            request_id=request_id, audio_seconds=0.0, first_audio_ms=None, total_ms=0.0,
            speech_tokens=0, text_chunks=0, cancelled=cancelled,
        )  # fmt: skip
        await self.results.send_multipart(encode(done))


class FakeProcess:
    """What the pool sees of a worker process, backed by a FakeWorker's task."""

    def __init__(self, worker: FakeWorker) -> None:
        self.worker = worker
        self.pid = next(_pids)
        self.returncode: int | None = None
        self.task = asyncio.get_running_loop().create_task(worker.run())

    def poll(self) -> int | None:
        return self.returncode

    def crash(self, code: int = 1) -> None:
        self.task.cancel()
        self.returncode = code

    def kill(self) -> None:
        self.crash(-signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        self.crash(0 if sig == signal.SIGTERM else -sig)

    def wait(self, timeout: float | None = None) -> int:
        assert self.returncode is not None, "wait() on a fake that is still running"
        return self.returncode


class FakeLauncher:
    """The pool's launcher: starts a FakeWorker for each (re)start and keeps them all."""

    def __init__(self, **behaviours: Behaviour) -> None:
        self.behaviours = behaviours
        self.processes: list[FakeProcess] = []

    def __call__(self, handle: WorkerHandle, jobs: str, results: str, control: str) -> FakeProcess:
        behaviour = self.behaviours.get(handle.worker_id.replace("-", "_"), Behaviour())
        worker = FakeWorker(
            handle.worker_id, handle.generation, behaviour, (jobs, results, control)
        )
        process = FakeProcess(worker)
        self.processes.append(process)
        return process

    def current(self, worker_id: str) -> FakeProcess:
        return [p for p in self.processes if p.worker.worker_id == worker_id][-1]

    async def close(self) -> None:
        for process in self.processes:
            process.task.cancel()
        await asyncio.gather(*(p.task for p in self.processes), return_exceptions=True)
