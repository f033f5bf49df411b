"""Starting workers: the fork server's preload never touches CUDA, a start in the background is a
worker process from the first moment, a fork server that fails falls back to a subprocess, and a
child whose fork server died is watched by itself while a new fork server starts, once.

(A real fork server killed under real workers: ``tests/service/test_restart.py``.)"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from app.pool import launcher
from app.pool.launcher import BackgroundStart, ForkedProcess, WorkerProcess
from tests.support.server import REPO

# Every way torch asks CUDA about devices, recorded instead of answered, then the preload.
PRELOAD_PROBE = """
import torch
asked = []
def record(name):
    def asking(*args, **kwargs):
        asked.append(name)
        return 0
    return asking
for name in ("_cuda_getDeviceCount", "_cuda_init"):
    setattr(torch._C, name, record(name))
for name in ("is_available", "device_count", "init", "current_device"):
    setattr(torch.cuda, name, record(name))
import worker.preload
assert not torch.cuda.is_initialized(), "the preload initialised CUDA"
assert not asked, f"the preload asked CUDA: {asked}"
from transformers.utils import import_utils
assert import_utils.is_torch_cuda_available.cache_info().currsize == 0, "an answer was kept"
assert torch.cuda.is_available is not None and torch.cuda.is_available.__name__ == "asking"
print("clean")
"""


def test_the_preload_never_initialises_cuda() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PRELOAD_PROBE], cwd=REPO, capture_output=True, text=True,
        timeout=240,
    )  # fmt: skip
    assert result.stdout.strip() == "clean", result.stderr[-2000:]


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"])


def test_a_kill_sent_while_starting_reaches_the_process() -> None:
    go, started = threading.Event(), []

    def slow_start() -> WorkerProcess:
        go.wait(10)
        started.append(sleeper())
        return started[-1]

    worker = BackgroundStart(slow_start)
    assert worker.poll() is None and worker.pid == 0  # starting counts as running
    worker.kill()
    assert worker.wait(timeout=0) == -signal.SIGKILL  # never blocks on the start
    go.set()
    deadline = time.monotonic() + 10
    while not started or started[0].poll() is None:
        assert time.monotonic() < deadline, "the late process was not killed"
        time.sleep(0.01)
    assert started[0].returncode == -signal.SIGKILL


def test_a_started_process_is_polled_signalled_and_waited_for() -> None:
    worker = BackgroundStart(sleeper)
    deadline = time.monotonic() + 10
    while worker.pid == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.05)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == -signal.SIGTERM and worker.poll() == -signal.SIGTERM


def test_a_start_that_fails_is_a_worker_that_exited() -> None:
    def broken() -> WorkerProcess:
        raise OSError("no python here")

    worker = BackgroundStart(broken)
    assert worker.wait(timeout=10) == BackgroundStart.FAILED


def test_a_failing_fork_server_falls_back_to_a_subprocess(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_fork_server(env: dict[str, str], argv: list[str]) -> WorkerProcess:
        raise ConnectionRefusedError("fork server gone")

    seen: list[tuple[dict[str, str], list[str]]] = []
    monkeypatch.setattr(launcher, "fork_worker", no_fork_server)
    monkeypatch.setattr(
        launcher, "popen_worker", lambda env, argv: seen.append((env, argv)) or sleeper()
    )
    worker = launcher.start_worker({"CUDA_VISIBLE_DEVICES": "3"}, ["--worker-id=gpu3-w0"])
    worker.kill()
    assert worker.wait(timeout=10) == -signal.SIGKILL
    # A kill may come before the start thread has even tried: it kills what that start makes.
    deadline = time.monotonic() + 10
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == [({"CUDA_VISIBLE_DEVICES": "3"}, ["--worker-id=gpu3-w0"])]
    assert "fork server gone" in caplog.text and "subprocess" in caplog.text


class Orphaned:
    """multiprocessing's view of a fork server's child once the fork server is gone: the status
    pipe closed, so the child "exited" with 255 whatever it does."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.exitcode = launcher.ORPHANED

    def join(self, timeout: float | None = None) -> None:
        return None


@pytest.fixture
def revivals(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    started: list[int] = []
    monkeypatch.setattr(launcher.revival, "start", lambda: started.append(1))
    return started


def zombie(command: list[str]) -> subprocess.Popen[bytes]:
    """A child that has exited and is not reaped yet."""
    child = subprocess.Popen(command)
    deadline = time.monotonic() + 10
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    return child


def test_a_child_outlives_its_fork_server(revivals: list[int]) -> None:
    child = sleeper()
    worker = ForkedProcess(Orphaned(child.pid))  # type: ignore[arg-type]
    assert worker.poll() is None and worker.poll() is None
    assert revivals == [1]  # a new fork server, asked for once however often it is polled
    with pytest.raises(subprocess.TimeoutExpired):
        worker.wait(timeout=0.05)
    worker.kill()
    # Adopted (as by the master as PID 1; here it is the test's own child): reaped, its code read.
    assert worker.wait(timeout=10) == -signal.SIGKILL
    child.returncode = -signal.SIGKILL  # reaped above, behind Popen's back


def test_a_child_that_exits_with_255_is_no_orphan(revivals: list[int]) -> None:
    child = zombie(["sh", "-c", "exit 255"])
    assert ForkedProcess(Orphaned(child.pid)).poll() == 255  # type: ignore[arg-type]
    assert revivals == []
    assert child.wait(timeout=10) == 255


def test_without_a_pidfd_a_child_is_watched_in_proc() -> None:
    child = sleeper()
    assert launcher._alive_in_proc(child.pid)
    child.kill()
    dead = zombie(["true"])
    assert not launcher._alive_in_proc(dead.pid)
    child.wait(timeout=10)
    dead.wait(timeout=10)
    assert not launcher._alive_in_proc(dead.pid)


def test_one_new_fork_server_at_a_time(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    go, warmed = threading.Event(), []

    def warm() -> None:
        warmed.append(1)
        go.wait(10)

    monkeypatch.setattr(launcher.Revival, "_warm", staticmethod(warm))
    revival = launcher.Revival()
    revival.start()
    revival.start()  # the second of two workers orphaned together
    go.set()
    revival.join(10)
    assert warmed == [1] and caplog.text.count("the fork server has died") == 1
