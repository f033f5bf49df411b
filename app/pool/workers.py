"""Worker processes: which to start (the device plan), how (environment and arguments), and the
master's record of one.

A GPU worker sees only its GPU: its ``CUDA_VISIBLE_DEVICES`` is that GPU's own entry of the
service's list (``app/gpus.py``: NVML's GPUs, limited by an inherited ``CUDA_VISIBLE_DEVICES``),
with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that an index means to CUDA what it means to NVML; so it
is pinned to that card whatever it does, and calls it ``cuda:0``. ``DEVICE=cuda:N`` picks the
N-th GPU of the service's list, as torch would number them in the service's environment.
Worker ids name NVML's index (``gpu2-w0``), as /system-status's GPU list does.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common.protocol import Heartbeat, ModelInfo, WorkerState
from common.settings import Settings

from .. import gpus
from .launcher import WorkerProcess, start_worker
from .outbox import Outbox
from .status import WorkerStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """Where one worker runs: a GPU of the service's list (None: the CPU)."""

    worker_id: str
    gpu: gpus.Gpu | None
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    ordinal: int = 0  # the GPU's place in the service's list: DEVICE=cuda:<ordinal> picks it

    @property
    def device(self) -> str:
        return "cpu" if self.gpu is None else f"cuda:{self.ordinal}"


class DeviceError(ValueError):
    """``DEVICE`` names a GPU the service cannot use."""


def plan_workers(settings: Settings, visible: list[gpus.Gpu] | None = None) -> list[Slot]:
    """``WORKERS_PER_DEVICE`` workers for each GPU ``DEVICE`` allows, else for the CPU."""
    listed = gpus.visible_gpus() if visible is None else visible
    per = settings.workers_per_device
    requested = settings.device.strip().lower()
    if requested == "cpu" or not listed:
        threads = max(1, (os.cpu_count() or 1) // per)
        return [Slot(f"cpu-w{i}", None, threads) for i in range(per)]
    ordinals = list(range(len(listed)))
    if requested.startswith("cuda:"):
        ordinals = [_ordinal(requested, listed)]
    return [
        Slot(f"gpu{listed[n].index}-w{i}", listed[n], 0, n) for n in ordinals for i in range(per)
    ]


def _ordinal(requested: str, listed: list[gpus.Gpu]) -> int:
    number = requested.split(":", 1)[1]
    if number.isdigit() and int(number) < len(listed):
        return int(number)
    names = ", ".join(f"cuda:{n} = GPU {g.index} {g.name} ({g.uuid})" for n, g in enumerate(listed))
    raise DeviceError(
        f"DEVICE={requested}: the service's GPUs are {names} (CUDA_VISIBLE_DEVICES limits them)"
    )


def worker_environment(slot: Slot, inherited: dict[str, str]) -> dict[str, str]:
    """The master's environment, pinned to ``slot``'s GPU (or to none, for the CPU)."""
    env = {**inherited, "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    env["CUDA_VISIBLE_DEVICES"] = "" if slot.gpu is None else slot.gpu.visible_as
    return env


# Starts the worker of a slot, connected to (its jobs, the results, the control) endpoints.
Launcher = Callable[["WorkerHandle", str, str, str], WorkerProcess]


@dataclass
class WorkerHandle:
    """The master's record of one worker slot, across restarts (``generation``)."""

    slot: Slot
    capacity: int = 0  # slots the worker offers: its heartbeat says
    generation: int = 0
    process: WorkerProcess | None = None
    outbox: Outbox | None = None  # sends to the worker (None while it is not running)
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
    model: ModelInfo | None = None  # as its heartbeat says: None until loaded
    error: str = ""
    cached_voices: list[str] = field(default_factory=list)

    @property
    def worker_id(self) -> str:
        return self.slot.worker_id

    @property
    def device(self) -> str:
        return self.slot.device

    @property
    def free_slots(self) -> int:
        return self.capacity - len(self.active) if self.state == "ready" else 0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def record(self, beat: Heartbeat) -> None:
        """What a heartbeat of the current generation tells about the worker."""
        self.last_beat = time.monotonic()
        self.pid, self.model = beat.pid, beat.model
        self.capacity = beat.capacity
        self.cached_voices = beat.cached_voices
        if beat.error or beat.state == "ready":
            self.error = beat.error

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            worker_id=self.worker_id,
            device=self.device,
            gpu=self.slot.gpu,
            state=self.state,
            pid=self.pid,
            generation=self.generation,
            restarts=self.restarts,
            active_requests=len(self.active),
            capacity=self.capacity,
            model=self.model,
            cached_voices=tuple(self.cached_voices),
            error=self.error or None,
            seconds_since_heartbeat=(
                round(time.monotonic() - self.last_beat, 2) if self.last_beat else None
            ),
        )


def spawn(handle: WorkerHandle, jobs: str, results: str, control: str) -> WorkerProcess:
    """Start the worker process for ``handle``'s slot, connected to the given endpoints."""
    argv = [
        f"--worker-id={handle.worker_id}",
        f"--generation={handle.generation}",
        f"--device={'cpu' if handle.slot.gpu is None else 'cuda:0'}",
        f"--threads={handle.slot.threads}",
        f"--jobs={jobs}",
        f"--results={results}",
        f"--control={control}",
    ]
    log.info("starting worker %s (generation %d)", handle.worker_id, handle.generation)
    return start_worker(worker_environment(handle.slot, dict(os.environ)), argv)
