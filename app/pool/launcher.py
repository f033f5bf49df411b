"""Starting worker processes: forked from a fork server that has the heavy imports done, so a
restarted worker costs its model load alone (importing torch, transformers and chatterbox takes
~10-25 s; the tiny test model loads in a fraction of a second).

Why Python's ``multiprocessing`` "forkserver" rather than a fork server of our own: it is the
same design (a clean process, started with ``python -c``, that imports the preload modules and
forks a child per request, never sharing the master's threads or sockets), already written and
tested, and it gives what the supervisor needs of a child it did not fork itself: its pid, its
exit status (the fork server sends it back, also after a ``kill -9``), and the master's liveness
to the child. The master only names modules (``common/worker_launch.py``); it imports no torch.

The fork server must never initialise CUDA (``worker/preload.py``): every worker sets its own
``CUDA_VISIBLE_DEVICES`` after the fork, and a CUDA context does not survive one.

Starting a child waits until the fork server has finished its imports (seconds, the first time),
so every start runs in a thread and the supervisor gets a :class:`BackgroundStart` at once; the
event loop never waits for it. If the fork server cannot start a worker, the worker is started
as a plain ``python -m worker`` subprocess instead (logged), as before the fork server.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Protocol

from common.worker_launch import PRELOAD, command, run_forked

log = logging.getLogger(__name__)
_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(PRELOAD)


class WorkerProcess(Protocol):
    """What the pool needs of a worker's process (``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ForkedProcess:
    """A child of the fork server, seen through the ``subprocess.Popen`` calls the pool uses."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.pid = int(process.pid or 0)

    def poll(self) -> int | None:
        return self.process.exitcode

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        code = self.poll()
        if code is None:
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        return code


def fork_worker(env: dict[str, str], argv: list[str]) -> WorkerProcess:
    """A worker forked from the fork server (started on first use); blocks until it is forked."""
    child = _forkserver.Process(target=run_forked, args=(env, argv), daemon=True)
    child.start()
    return ForkedProcess(child)


def popen_worker(env: dict[str, str], argv: list[str]) -> WorkerProcess:
    """A worker as a plain subprocess: every import its own."""
    return subprocess.Popen(command(argv), env=env)


def start_worker(env: dict[str, str], argv: list[str]) -> WorkerProcess:
    """A worker with this environment and these arguments, forked in the background."""
    return BackgroundStart(lambda: _fork_or_popen(env, argv))


def _fork_or_popen(env: dict[str, str], argv: list[str]) -> WorkerProcess:
    try:
        return fork_worker(env, argv)
    except Exception as error:
        log.error("the fork server could not start a worker (%s): starting a subprocess", error)
        return popen_worker(env, argv)


class BackgroundStart:
    """A worker being started in a thread: ``WorkerProcess`` from the first moment.

    Until the process exists it counts as running (``poll`` is None, ``pid`` 0); a kill or
    signal sent meanwhile reaches it as soon as it does. If it cannot be started at all, it has
    exited with code 1.
    """

    FAILED = 1

    def __init__(self, start: Callable[[], WorkerProcess]) -> None:
        self._lock = threading.Lock()
        self._process: WorkerProcess | None = None
        self._pending: list[int] = []  # signals sent before the process existed
        self._failed = False
        self._thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self._thread.start()

    def _run(self, start: Callable[[], WorkerProcess]) -> None:
        try:
            process = start()
        except Exception:
            log.exception("a worker could not be started")
            with self._lock:
                self._failed = True
            return
        with self._lock:
            self._process = process
            pending, self._pending = self._pending, []
        for sig in pending:
            process.send_signal(sig)

    @property
    def pid(self) -> int:
        return self._process.pid if self._process is not None else 0

    def poll(self) -> int | None:
        with self._lock:
            if self._failed:
                return self.FAILED
            process = self._process
            if process is None:
                killed = signal.SIGKILL in self._pending
                return -signal.SIGKILL if killed else None
        return process.poll()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        with self._lock:
            process = self._process
            if process is None:
                self._pending.append(sig)
                return
        process.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        code = self.poll()
        if code is not None and self._process is None:
            return code  # failed, or killed before it existed: the thread kills what comes
        self._thread.join(timeout)
        if self._process is None:
            code = self.poll()
            if code is None:
                raise subprocess.TimeoutExpired("a worker being started", timeout or 0.0)
            return code
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self._process.wait(left)
