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

The fork server is no single point of failure. Its children do not need it once forked: if it
dies, multiprocessing reports each of them as exited with 255 (their status pipe closed), but
:class:`ForkedProcess` sees they live on and watches them by pidfd instead, and a new fork server
is started at once (:class:`Revival`), so that the next start finds its imports done.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import select
import signal
import subprocess
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from common.worker_launch import PRELOAD, command, run_forked

log = logging.getLogger(__name__)
_forkserver = multiprocessing.get_context("forkserver")
_forkserver.set_forkserver_preload(PRELOAD)
ORPHANED = 255  # multiprocessing's exit code for a child whose fork server is gone


class WorkerProcess(Protocol):
    """What the pool needs of a worker's process (``subprocess.Popen`` is one)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def kill(self) -> None: ...

    def send_signal(self, sig: int) -> None: ...

    def wait(self, timeout: float | None = None) -> int: ...


class ForkedProcess:
    """A child of the fork server, seen through the ``subprocess.Popen`` calls the pool uses.

    The fork server reaps it and reports its exit status. If the fork server dies first, the child
    lives on: it is watched by its pidfd from then on, and reaped here if the master adopted it
    (as it does when it is PID 1, in the container); otherwise its status is lost (255).
    """

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self.pid = int(process.pid or 0)
        self._pidfd = _open_pidfd(self.pid)
        self._close_pidfd = weakref.finalize(self, _close, self._pidfd)
        self._orphaned = False  # its fork server died before it
        self._code: int | None = None

    def poll(self) -> int | None:
        if self._code is not None:
            return self._code
        code = self.process.exitcode
        if code == ORPHANED and not self._orphaned and self._alive():
            self._orphaned = True
            revival.start()
        if self._orphaned:
            code = None if self._alive() else _reap(self.pid)
        if code is not None:
            self._code = code
            self._close_pidfd()
        return code

    def _alive(self) -> bool:
        if self._pidfd is not None:
            return not _readable(self._pidfd)  # as a pidfd is once its process has exited
        return _alive_in_proc(self.pid)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        self.process.join(timeout)  # at once if the fork server is gone: then poll
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code


def _open_pidfd(pid: int) -> int | None:
    """A file descriptor that turns readable when ``pid`` exits (Linux 5.3+), None without."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _readable(fd: int) -> bool:
    """Whether ``fd`` is readable now (``poll``: the master's descriptors may pass 1024)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _close(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)


def _alive_in_proc(pid: int) -> bool:
    """Whether ``pid`` runs, from /proc: where there is no pidfd (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _reap(pid: int) -> int:
    """The exit code of ``pid``, which has exited, if this process adopted it; else 255."""
    try:
        reaped, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        reaped, status = 0, 0  # init's child: its status is not ours to read
    if reaped:
        return os.waitstatus_to_exitcode(status)
    log.info("worker pid %d has exited; its exit code went with its fork server (255)", pid)
    return ORPHANED


class Revival:
    """A new fork server, started in the background as soon as the last one is found dead.

    multiprocessing would start one on the next worker start anyway, but that start would then
    wait for its imports (~10-25 s); started at once, they are done before a worker needs them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return  # another worker of the same dead fork server
            log.error("the fork server has died; its workers carry on, a new one is starting")
            self._thread = threading.Thread(target=self._warm, name="fork-server", daemon=True)
            self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @staticmethod
    def _warm() -> None:
        began = time.monotonic()
        try:
            probe = _forkserver.Process(daemon=True)  # no target: it exits as soon as forked
            probe.start()  # which the new fork server does once its imports are done
            probe.join()
        except Exception as error:
            log.error("no new fork server yet (%s): the next start tries again", error)
            return
        log.info("a new fork server is ready (%.1f s)", time.monotonic() - began)


revival = Revival()


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
