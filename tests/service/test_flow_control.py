"""Flow control from the master to a worker, in process against fake workers over real ZeroMQ
sockets: nothing is dropped when a worker stops reading, its clients are held back one by one,
control messages overtake text, and what a lost worker never got is counted and failed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from app.metrics import PoolCollector
from app.pool import WorkerPool
from app.pool.pending_text import MAX_PIECES
from app.pool.streams import RequestStream, StreamFailed
from common.params import SynthesisParams
from common.protocol import Job, TextPiece
from tests.service.test_pool_inprocess import SLOTS, running_pool, until
from tests.support.fake_workers import Behaviour, FakeLauncher, FakeWorker

FLOOD = 10_000


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher(cpu_w0=Behaviour(capacity=4))


def streaming() -> RequestStream:
    return RequestStream(text=None, params=SynthesisParams())


def texts(worker: FakeWorker, request_id: str) -> Iterator[TextPiece]:
    for message in worker.received:
        if isinstance(message, TextPiece) and message.request_id == request_id:
            yield message


async def flood(pool: WorkerPool, stream: RequestStream, pieces: list[TextPiece]) -> int:
    for piece in pieces:
        await pool.send_text(stream, piece)
    return len(pieces)


def pieces(stream: RequestStream, n: int = FLOOD, **flags: bool) -> list[TextPiece]:
    return [TextPiece(request_id=stream.request_id, text=f"w{i} ", **flags) for i in range(n)]


async def stalled(pool: WorkerPool, launcher: FakeLauncher) -> tuple[RequestStream, FakeWorker]:
    """A streaming request its worker has started, and that worker, now no longer reading."""
    stream = streaming()
    await pool.submit(stream)
    worker = launcher.current("cpu-w0").worker
    await until(lambda: stream.request_id in worker.jobs_seen)
    await stream.started()
    worker.reading.clear()
    return stream, worker


async def test_a_flood_to_a_stalled_worker_waits_and_then_arrives_whole_in_order(
    launcher: FakeLauncher,
) -> None:
    async with running_pool(launcher, SLOTS[:1]) as pool:
        flooding, other = streaming(), streaming()
        await pool.submit(flooding)
        worker = launcher.current("cpu-w0").worker
        await until(lambda: flooding.request_id in worker.jobs_seen)
        worker.reading.clear()  # the worker's loop stops reading (SIGSTOP, a loaded machine)
        sending = asyncio.create_task(flood(pool, flooding, pieces(flooding)))
        await asyncio.sleep(0.5)
        assert not sending.done(), "the client was not held back"
        # Held back with at most the pipe's messages and one bounded buffer taken from it.
        assert len(pool.dispatcher.texts[flooding.request_id]) <= MAX_PIECES
        outbox = pool.handles[0].outbox
        assert outbox is not None
        before = len(worker.received)
        in_pipe = outbox.sent - before  # ZeroMQ's queues and the kernel's buffer
        await pool.submit(other)  # another client's Job: it overtakes all that is not in the pipe
        worker.reading.set()
        await until(lambda: other.request_id in worker.jobs_seen)
        job = next(i for i, m in enumerate(worker.received) if m.request_id == other.request_id)
        flood_ahead = job - before
        assert flood_ahead <= in_pipe + 2 < FLOOD / 10
        assert await asyncio.wait_for(sending, 30) == FLOOD
        await until(lambda: len(list(texts(worker, flooding.request_id))) == FLOOD, 30)
        received = "".join(p.text for p in texts(worker, flooding.request_id))
        assert received == "".join(f"w{i} " for i in range(FLOOD))
        assert pool.status().undelivered_messages == 0


async def test_flags_without_text_ride_on_the_text_before_them(launcher: FakeLauncher) -> None:
    async with running_pool(launcher, SLOTS[:1]) as pool:
        stream, worker = await stalled(pool, launcher)
        await pool.send_text(stream, TextPiece(request_id=stream.request_id, text="Hi"))
        flushes = [TextPiece(request_id=stream.request_id, flush=True)] * FLOOD
        keepalives = [TextPiece(request_id=stream.request_id)] * FLOOD
        started = time.monotonic()
        await flood(pool, stream, flushes + keepalives)  # never held back: they add nothing
        assert time.monotonic() - started < 10
        await pool.send_text(stream, TextPiece(request_id=stream.request_id, end=True))
        worker.reading.set()
        await until(lambda: any(p.end for p in texts(worker, stream.request_id)))
        sent = list(texts(worker, stream.request_id))
        assert len(sent) <= 3  # "Hi" + flush, then the end (its own: a pause stays a pause)
        assert "".join(p.text for p in sent) == "Hi" and sent[0].flush


async def test_a_flush_storm_to_a_worker_keeping_up_sends_one_flush(
    launcher: FakeLauncher,
) -> None:
    async with running_pool(launcher, SLOTS[:1]) as pool:
        stream, worker = await stalled(pool, launcher)
        worker.reading.set()  # reading: each flush would go out on its own
        await pool.send_text(stream, TextPiece(request_id=stream.request_id, text="Hi"))
        for _ in range(FLOOD):
            await pool.send_text(stream, TextPiece(request_id=stream.request_id, flush=True))
            await asyncio.sleep(0)  # the outbox sends what is waiting
        await pool.send_text(stream, TextPiece(request_id=stream.request_id, end=True))
        await until(lambda: any(p.end for p in texts(worker, stream.request_id)))
        assert sum(p.flush for p in texts(worker, stream.request_id)) == 1


async def test_a_cancel_overtakes_the_text_waiting_before_it(launcher: FakeLauncher) -> None:
    async with running_pool(launcher, SLOTS[:1]) as pool:
        stream, worker = await stalled(pool, launcher)
        sending = asyncio.create_task(flood(pool, stream, pieces(stream)))
        await until(lambda: pool.dispatcher.texts[stream.request_id].full)
        pool.release(stream)  # the client cancels (or leaves) while held back
        assert await asyncio.wait_for(sending, 5) == FLOOD  # let go: the rest goes nowhere
        worker.reading.set()
        await until(lambda: stream.request_id not in worker.running)
        assert len(list(texts(worker, stream.request_id))) < FLOOD / 10


async def test_a_lost_worker_fails_what_it_never_got_and_counts_it(
    launcher: FakeLauncher,
) -> None:
    async with running_pool(launcher, SLOTS[:1]) as pool:
        stream, _ = await stalled(pool, launcher)
        sending = asyncio.create_task(flood(pool, stream, pieces(stream)))
        await until(lambda: pool.dispatcher.texts[stream.request_id].full)
        launcher.current("cpu-w0").crash(code=1)
        with pytest.raises(StreamFailed) as failed:
            async for _ in stream.audio():
                pass
        assert failed.value.failed.code == "worker_crashed"
        await asyncio.wait_for(sending, 5)  # the held-back client is let go, not left waiting
        assert pool.status().undelivered_messages > 0
        metrics = {m.name: m for m in PoolCollector(pool).collect()}
        assert metrics["tts_undelivered_messages"].samples[0].value > 0


async def test_every_job_reaches_its_worker_however_many_at_once(launcher: FakeLauncher) -> None:
    launcher.behaviours = {"cpu_w0": Behaviour(capacity=500, hold=False, chunks=1)}
    async with running_pool(launcher, SLOTS[:1]) as pool:
        streams = [RequestStream(text="Hi.", params=SynthesisParams()) for _ in range(500)]
        worker = launcher.current("cpu-w0").worker
        worker.reading.clear()
        for stream in streams:
            await pool.submit(stream)
        await asyncio.sleep(0.2)
        worker.reading.set()
        for stream in streams:
            await asyncio.wait_for(stream.started(), 10)
        jobs = [m.request_id for m in worker.received if isinstance(m, Job)]
        assert jobs == [s.request_id for s in streams]
