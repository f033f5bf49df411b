"""Worker processes: which to start (the device plan), starting them, and the master's record.

Workers are plain subprocesses (``python -m worker``): the master never imports torch, and a
worker that crashes takes nothing of the master with it. A GPU worker sees only its GPU
(``CUDA_VISIBLE_DEVICES``), so it is pinned to it whatever it does.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import zmq

from common.protocol import Heartbeat, WorkerState
from common.settings import Settings

from .. import gpus
from .status import WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: ``gpu`` is the physical GPU index, None for the CPU."""

    worker_id: str
    gpu: int | None
    threads: int = 0  # torch CPU threads; 0 leaves torch's default


def plan_workers(settings: Settings, gpu_total: int | None = None) -> list[Slot]:
    """``WORKERS_PER_DEVICE`` workers for each GPU ``DEVICE`` allows, else for the CPU."""
    count = gpus.gpu_count() if gpu_total is None else gpu_total
    per = settings.workers_per_device
    requested = settings.device.strip().lower()
    if requested == "cpu" or count == 0:
        threads = max(1, (os.cpu_count() or 1) // per)
        return [Slot(f"cpu-w{i}", None, threads) for i in range(per)]
    if requested.startswith("cuda:"):
        indices = [int(requested.split(":", 1)[1])]
    else:
        indices = list(range(count))
    return [Slot(f"gpu{g}-w{i}", g) for g in indices for i in range(per)]


class WorkerProcess(Protocol):
    """What the pool needs of a worker's process (``subprocess.Popen`` is one)."""

    pid: int

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


# Starts the worker of a slot, connected to (its jobs, the results, the control) endpoints.
Launcher = Callable[["WorkerHandle", str, str, str], WorkerProcess]


@dataclass
class WorkerHandle:
    """The master's record of one worker slot, across restarts (``generation``)."""

    slot: Slot
    capacity: int = 0  # slots the worker offers: its heartbeat says
    generation: int = 0
    process: WorkerProcess | None = None
    jobs: zmq.Socket[bytes] | None = None
    state: WorkerState = "stopped"
    active: set[str] = field(default_factory=set)
    spawned_at: float = 0.0
    last_beat: float = 0.0
    last_assigned: float = 0.0
    restarts: int = 0
    restarts_in_a_row: int = 0
    restart_at: float | None = None
    ever_ready: bool = False
    pid: int | None = None
    model: str = ""
    variant: str = ""
    label: str = ""
    repo_id: str = ""
    error: str = ""
    cached_voices: list[str] = field(default_factory=list)

    @property
    def worker_id(self) -> str:
        return self.slot.worker_id

    @property
    def device(self) -> str:
        return "cpu" if self.slot.gpu is None else f"cuda:{self.slot.gpu}"

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self.active) if self.state == "ready" else 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def record(self, beat: Heartbeat) -> None:
        """What a heartbeat of the current generation tells about the worker."""
        self.last_beat = time.monotonic()
        self.pid, self.model, self.variant = beat.pid, beat.model, beat.variant
        self.label, self.repo_id = beat.label, beat.repo_id
        self.capacity = beat.capacity
        self.cached_voices = beat.cached_voices
        if beat.error or beat.state == "ready":
            self.error = beat.error

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            worker_id=self.worker_id,
            device=self.device,
            state=self.state,
            pid=self.pid,
            generation=self.generation,
            restarts=self.restarts,
            active_requests=len(self.active),
            capacity=self.capacity,
            model=self.model,
            variant=self.variant,
            label=self.label,
            repo_id=self.repo_id,
            cached_voices=tuple(self.cached_voices),
            error=self.error or None,
            seconds_since_heartbeat=(
                round(time.monotonic() - self.last_beat, 2) if self.last_beat else None
            ),
        )


def spawn(handle: WorkerHandle, jobs: str, results: str, control: str) -> WorkerProcess:
    """Start the worker process for ``handle``'s slot, connected to the given endpoints."""
    env = dict(os.environ)
    device = "cpu"
    if handle.slot.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(handle.slot.gpu)
        device = "cuda:0"
    command = [
        sys.executable,
        "-m",
        "worker",
        f"--worker-id={handle.worker_id}",
        f"--generation={handle.generation}",
        f"--device={device}",
        f"--threads={handle.slot.threads}",
        f"--jobs={jobs}",
        f"--results={results}",
        f"--control={control}",
    ]
    log.info("starting worker %s (generation %d)", handle.worker_id, handle.generation)
    return subprocess.Popen(command, env=env)
