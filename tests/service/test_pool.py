"""The worker pool under load, through the real processes: dispatch, capacity, failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import websockets

from tests.support.server import SAMPLES_PER_TOKEN, Server, parse_wav


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


@contextlib.asynccontextmanager
async def held_utterance(server: Server) -> AsyncIterator[websockets.ClientConnection]:
    """A WebSocket utterance started without text: it holds a worker slot and costs nothing."""
    async with websockets.connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.send(json.dumps({"type": "start"}))
        assert json.loads(await ws.recv())["type"] == "started"
        yield ws


def active_by_worker(server: Server) -> dict[str, int]:
    return {w["worker_id"]: w["active_requests"] for w in server.status()["workers"]}


async def test_a_new_job_goes_to_the_idle_worker_not_the_busy_one(server: Server) -> None:
    async with held_utterance(server):
        busy = [w for w, n in active_by_worker(server).items() if n == 1]
        assert len(busy) == 1
        async with httpx.AsyncClient(headers=server.headers, timeout=60) as client:
            for seed in range(3):  # round-robin would hand the second one to the busy worker
                params = {"text": "Quick.", "seed": seed, "fixed_token_count": 5}
                response = await client.get(f"{server.url}/tts/generate", params=params)
                assert response.status_code == 200
                assert response.headers["x-worker-id"] != busy[0]


async def test_eight_concurrent_streams_all_complete_with_correct_audio(server: Server) -> None:
    async def fetch(client: httpx.AsyncClient, seed: int) -> tuple[str, np.ndarray]:
        params = {"text": f"Stream number {seed}.", "seed": seed, "fixed_token_count": 40}
        response = await client.get(f"{server.url}/tts/generate", params=params)
        assert response.status_code == 200, response.text
        return response.headers["x-worker-id"], parse_wav(response.content)[1]

    async with httpx.AsyncClient(headers=server.headers, timeout=240) as client:
        results = await asyncio.gather(*(fetch(client, seed) for seed in range(8)))
        alone = (await fetch(client, 3))[1]
    assert {worker for worker, _ in results} == {"cpu-w0", "cpu-w1"}
    assert all(len(audio) == 40 * SAMPLES_PER_TOKEN for _, audio in results)
    # Batched with the others or alone, the audio is the same (to one 16-bit step).
    assert np.abs(results[3][1].astype(int) - alone.astype(int)).max() <= 1
    assert not np.array_equal(results[3][1], results[4][1])


async def test_beyond_capacity_and_queue_requests_get_503_with_retry_after(server: Server) -> None:
    params = {"text": "Waiting.", "fixed_token_count": 5}
    async with httpx.AsyncClient(headers=server.headers, timeout=120) as client:
        async with contextlib.AsyncExitStack() as holders:
            for _ in range(8):  # every slot of both workers
                await holders.enter_async_context(held_utterance(server))
            assert sum(active_by_worker(server).values()) == 8
            queued = [
                asyncio.create_task(client.get(f"{server.url}/tts/generate", params=params))
                for _ in range(2)
            ]
            while server.status()["service"]["queued_requests"] < 2:
                await asyncio.sleep(0.05)
            started = time.perf_counter()
            refused = await client.get(f"{server.url}/tts/generate", params=params)
            assert time.perf_counter() - started < 2.0  # refused at once, not after a wait
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "overloaded"
            assert not any(task.done() for task in queued)
        # The held slots are free again: the queued requests run.
        assert [(await task).status_code for task in queued] == [200, 200]


async def test_a_client_that_disconnects_frees_its_slot_quickly(server: Server) -> None:
    params = {"text": "A long story.", "seed": 1, "fixed_token_count": 2000}
    async with httpx.AsyncClient(headers=server.headers, timeout=60) as client:
        async with client.stream("GET", f"{server.url}/tts/generate", params=params) as response:
            chunks = response.aiter_bytes()
            await chunks.__anext__()  # the WAV header
            await chunks.__anext__()  # audio: generation is under way
            assert sum(active_by_worker(server).values()) == 1
        left = time.perf_counter()
    while sum(active_by_worker(server).values()):
        await asyncio.sleep(0.01)
        assert time.perf_counter() - left < 3.0, "the slot was not freed"


async def test_kill_9_of_a_worker_fails_only_its_own_requests(server: Server) -> None:
    long = {"text": "Doomed.", "seed": 1, "fixed_token_count": 600, "format": "raw_pcm"}
    other = {"text": "Survivor.", "seed": 2, "fixed_token_count": 120}
    async with (
        websockets.connect(server.ws_url, additional_headers=server.headers) as ws,
        httpx.AsyncClient(headers=server.headers, timeout=120) as client,
    ):
        await ws.send(json.dumps(long))
        assert json.loads(await ws.recv())["type"] == "started"
        assert isinstance(await ws.recv(), bytes)  # audio is flowing
        victim = next(w for w in server.status()["workers"] if w["active_requests"] == 1)
        async with client.stream("GET", f"{server.url}/tts/generate", params=other) as survivor:
            assert survivor.headers["x-worker-id"] != victim["worker_id"]
            os.kill(victim["pid"], signal.SIGKILL)
            body = b"".join([chunk async for chunk in survivor.aiter_bytes()])
        assert len(parse_wav(body)[1]) == 120 * SAMPLES_PER_TOKEN  # carried on untouched
        while isinstance(message := await ws.recv(), bytes):
            pass
        error = json.loads(message)
        assert error["type"] == "error" and error["code"] == "worker_crashed"
        assert "retry" in error["message"]
    restarted = server.wait_idle()["workers"]
    again = next(w for w in restarted if w["worker_id"] == victim["worker_id"])
    assert again["restarts"] == 1 and again["pid"] != victim["pid"]
    assert again["generation"] == victim["generation"] + 1
