"""Worker processes: which to start (the device plan), starting them, and what the master knows.

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
from dataclasses import dataclass, field

import zmq

from common.settings import Settings

from . import gpus

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


@dataclass
class WorkerHandle:
    """The master's record of one worker slot, across restarts (``generation``)."""

    slot: Slot
    capacity: int
    generation: int = 0
    process: subprocess.Popen[bytes] | None = None
    jobs: zmq.Socket[bytes] | None = None
    state: str = "stopped"
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

    def describe(self) -> dict[str, object]:
        return {
            "worker_id": self.worker_id,
            "device": self.device,
            "state": self.state,
            "pid": self.pid,
            "generation": self.generation,
            "restarts": self.restarts,
            "active_requests": len(self.active),
            "capacity": self.capacity,
            "model": self.model,
            "cached_voices": self.cached_voices,
            "error": self.error or None,
            "seconds_since_heartbeat": (
                round(time.monotonic() - self.last_beat, 2) if self.last_beat else None
            ),
        }


def spawn(handle: WorkerHandle, jobs: str, results: str, control: str) -> subprocess.Popen[bytes]:
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
