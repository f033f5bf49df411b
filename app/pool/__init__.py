"""The pool of worker processes: ``WorkerPool`` (what routes use), read through ``PoolStatus``.

Modules: ``pool`` (the facade), ``dispatch`` (slots, queue, result routing), ``supervisor``
(start, heartbeats, restarts), ``transport`` (ZeroMQ sockets), ``workers`` (the device plan,
spawning, the master's record of a worker), ``status`` (the read-only snapshot), ``streams``
(a request's handle: what to run, the events coming back).
"""

from .dispatch import PoolUnavailable
from .pool import WorkerPool
from .status import PoolStatus, WorkerStatus

__all__ = ["PoolStatus", "PoolUnavailable", "WorkerPool", "WorkerStatus"]
