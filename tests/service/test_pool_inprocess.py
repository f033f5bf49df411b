"""Dispatch and supervision of the pool in process, against fake workers that speak the real
protocol over real ZeroMQ sockets (tests/fake_workers.py): fast, and exact about timing."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import pytest

from app.pool import PoolUnavailable, WorkerPool
from app.pool.streams import RequestStream, StreamFailed
from app.pool.supervisor import FIRST_BACKOFF
from app.pool.workers import Slot
from common.params import SynthesisParams
from common.protocol import Heartbeat
from common.settings import Settings
from tests.support.fake_workers import Behaviour, FakeLauncher

SLOTS = [Slot("cpu-w0", None), Slot("cpu-w1", None)]


def settings(**values: object) -> Settings:
    defaults: dict[str, object] = {
        "max_queued_requests": 2,
        "queue_timeout_seconds": 5,
        "heartbeat_timeout_seconds": 5,
        "shutdown_timeout_seconds": 1,
    }
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def stream() -> RequestStream:
    return RequestStream(text="Hi.", params=SynthesisParams())


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher(cpu_w0=Behaviour(capacity=2), cpu_w1=Behaviour(capacity=2))


@contextlib.asynccontextmanager
async def running_pool(
    launcher: FakeLauncher, slots: list[Slot] = SLOTS, **values: object
) -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(settings(**values), slots, launcher=launcher)
    await pool.start()
    try:
        await until(lambda: pool.status().ready)
        yield pool
    finally:
        await pool.stop()
        await launcher.close()


async def test_a_job_goes_to_the_worker_with_most_free_slots(launcher: FakeLauncher) -> None:
    async with running_pool(launcher) as pool:
        streams = [stream() for _ in range(4)]
        for s in streams:
            await pool.submit(s)
        # Least loaded first, ties to the one assigned least recently: w0, w1, w0, w1.
        assert [s.worker_id for s in streams] == ["cpu-w0", "cpu-w1", "cpu-w0", "cpu-w1"]
        await until(
            lambda: all(
                len(launcher.current(w).worker.jobs_seen) == 2 for w in ("cpu-w0", "cpu-w1")
            )
        )
        # Both workers are full: the next one waits for a slot and gets the first to free up.
        waiting = asyncio.create_task(pool.submit(extra := stream()))
        await until(lambda: pool.status().queued_requests == 1)
        pool.release(streams[1])  # the client of a cpu-w1 request went away
        await asyncio.wait_for(waiting, 5)
        assert extra.worker_id == "cpu-w1"


async def test_a_workers_slots_are_what_its_heartbeat_offers(launcher: FakeLauncher) -> None:
    launcher.behaviours = {"cpu_w0": Behaviour(capacity=3)}
    async with running_pool(launcher, SLOTS[:1], max_queued_requests=0) as pool:
        assert pool.status().capacity == 3  # whatever CONCURRENT_REQUESTS_PER_WORKER says
        for _ in range(3):
            await pool.submit(stream())
        with pytest.raises(PoolUnavailable) as refused:
            await pool.submit(stream())
        assert refused.value.code == "overloaded"


async def test_a_lost_worker_fails_only_its_requests_and_comes_back(
    launcher: FakeLauncher,
) -> None:
    async with running_pool(launcher) as pool:
        doomed, survivor = stream(), stream()
        await pool.submit(doomed)
        await pool.submit(survivor)
        assert (doomed.worker_id, survivor.worker_id) == ("cpu-w0", "cpu-w1")
        await doomed.started()
        await survivor.started()
        crashed_at = time.monotonic()
        launcher.current("cpu-w0").crash(code=1)
        with pytest.raises(StreamFailed) as failed:
            async for _ in doomed.audio():
                pass
        assert failed.value.failed.code == "worker_crashed"
        assert "exited with code 1" in failed.value.failed.message
        assert not survivor.finished
        await until(lambda: pool.status().workers[0].state == "ready")
        worker = pool.status().workers[0]
        assert worker.generation == 2 and worker.restarts == 1
        assert time.monotonic() - crashed_at >= FIRST_BACKOFF
        assert pool.status().workers[1].active_requests == 1


async def test_a_silent_worker_is_killed_and_started_again(launcher: FakeLauncher) -> None:
    async with running_pool(launcher, heartbeat_timeout_seconds=0.3) as pool:
        first = launcher.current("cpu-w0")
        first.worker.silent = True
        await until(lambda: first.poll() is not None)
        assert first.poll() == -9
        await until(lambda: pool.status().workers[0].state == "ready")
        assert pool.status().workers[0].generation == 2
        assert pool.status().workers[0].restarts == 1


async def test_heartbeats_of_an_earlier_generation_are_ignored(launcher: FakeLauncher) -> None:
    async with running_pool(launcher) as pool:
        stale = Heartbeat(
            worker_id="cpu-w0", generation=0, pid=1, state="failed", device="cpu",
            capacity=50, active=0, error="old news",
        )  # fmt: skip
        pool.supervisor.on_heartbeat(stale)
        worker = pool.status().workers[0]
        assert worker.state == "ready" and worker.capacity == 2 and worker.error is None


async def test_a_draining_pool_refuses_and_does_not_restart(launcher: FakeLauncher) -> None:
    async with running_pool(launcher) as pool:
        pool.begin_drain()
        with pytest.raises(PoolUnavailable) as refused:
            await pool.submit(stream())
        assert refused.value.code == "worker_draining"
        launcher.current("cpu-w0").crash()
        await until(lambda: pool.status().workers[0].state == "stopped")
        await asyncio.sleep(2 * FIRST_BACKOFF)
        assert pool.status().workers[0].generation == 1
