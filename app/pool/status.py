"""A read-only snapshot of the pool: what health checks, metrics and routes may know of it.

Readers get frozen values taken at one moment, never the pool's live records, so nothing outside
``app.pool`` can change (or come to depend on) how dispatch and supervision keep their state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from common.protocol import ModelInfo, WorkerState

from ..gpus import Gpu

_NOT_LOADED = ModelInfo(description="", variant="", label="", repo_id="")


@dataclass(frozen=True)
class WorkerStatus:
    worker_id: str
    device: str  # cuda:N as DEVICE names it (N-th GPU of the service's), or cpu
    gpu: Gpu | None  # the physical card: NVML index, name, UUID, as /system-status's gpus
    state: WorkerState
    pid: int | None
    generation: int
    restarts: int
    active_requests: int
    capacity: int  # the slots the worker offers, from its heartbeat
    model: ModelInfo | None  # None until loaded
    cached_voices: tuple[str, ...]
    error: str | None
    seconds_since_heartbeat: float | None

    def as_dict(self) -> dict[str, object]:
        """The worker in /system-status: its model's fields among the others ("" until loaded)."""
        described = asdict(self)
        model = self.model or _NOT_LOADED
        described.update(
            model=model.description,
            **model.model_dump(exclude={"description"}),
            cached_voices=list(self.cached_voices),
        )
        return described


@dataclass(frozen=True)
class PoolStatus:
    accepting: bool  # new requests are taken (False while draining or stopped)
    draining: bool
    ready: bool  # every worker has loaded once and one can take requests now
    reason: str  # why (not) ready, in words
    queued_requests: int  # waiting for a slot
    in_use: int  # requests submitted and not yet released by their route
    workers: tuple[WorkerStatus, ...]
    undelivered_messages: int = 0  # discarded with lost workers (each failed its request)

    @property
    def capacity(self) -> int:
        """Slots of every worker, ready or not (as last reported)."""
        return sum(w.capacity for w in self.workers)

    @property
    def ready_capacity(self) -> int:
        return sum(w.capacity for w in self.workers if w.state == "ready")

    @property
    def active_requests(self) -> int:
        return sum(w.active_requests for w in self.workers)

    @property
    def variant(self) -> str | None:
        """The model variant the workers serve, once one has said."""
        served = self.served_model
        return served.variant if served else None

    @property
    def served_model(self) -> ModelInfo | None:
        """The model a worker has loaded (all serve the same)."""
        return next((w.model for w in self.workers if w.model), None)
