"""Flow control through the real service: a client replaying an LLM's reply a word a message
while the workers are stopped (SIGSTOP, as a loaded machine stalls them) loses no word, is held
back alone, and another client's request is served as soon as the workers run again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.support.server import API_KEY, Server

WORDS = [f"w{i}" for i in range(3000)]
STALL_SECONDS = 3.0
FAST = {"fixed_token_count": 8, "seed": 1}


@contextlib.contextmanager
def stopped(pids: list[int]) -> Iterator[None]:
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)


async def read_until_done(ws: websockets.ClientConnection) -> list[dict[str, Any]]:
    events = []
    while True:
        message = await asyncio.wait_for(ws.recv(), 120)
        if isinstance(message, str):
            events.append(json.loads(message))
            if events[-1]["type"] in ("done", "error"):
                return events


async def test_a_word_by_word_flood_to_stalled_workers_loses_nothing(
    server: Server, capfd: pytest.CaptureFixture[str]
) -> None:
    server.wait_idle()
    url = f"{server.ws_url}?api_key={API_KEY}"
    async with websockets.connect(url, max_size=None) as ws:
        start = {"type": "start", "format": "raw_pcm", "timings": True, **FAST}
        await ws.send(json.dumps(start))
        assert json.loads(await ws.recv())["type"] == "started"
        reading = asyncio.create_task(read_until_done(ws))
        with stopped(server.worker_pids()):
            sending = asyncio.gather(
                *[ws.send(json.dumps({"type": "text", "text": w + " "})) for w in WORDS]
            )
            await asyncio.sleep(STALL_SECONDS)
        resumed = time.monotonic()
        other = await asyncio.to_thread(
            httpx.post, f"{server.url}/tts/generate", headers=server.headers, timeout=60,
            json={"text": "Still alive.", "format": "raw_pcm", **FAST},
        )  # fmt: skip
        served_after = time.monotonic() - resumed
        assert other.status_code == 200 and other.content
        assert served_after < 5, f"another client waited {served_after:.1f} s"
        await sending
        await ws.send(json.dumps({"type": "end"}))
        events = await reading
    assert events[-1]["type"] == "done", events[-1]
    spoken = " ".join(e["text"] for e in events if e["type"] == "timings").split()
    assert spoken == WORDS  # every word, in order, none dropped
    server.wait_idle(timeout=10)
    log = capfd.readouterr().err  # the service's output, master and workers
    assert "not taking messages" not in log and "Traceback" not in log
