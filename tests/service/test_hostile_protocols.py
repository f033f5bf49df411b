"""Hostile clients on every protocol, table-driven: ours (``WS /tts/stream``, ``/tts/generate``),
ElevenLabs' multi- and single-context sockets and HTTP routes, OpenAI's ``/v1/audio/speech``,
against binary frames, non-JSON, deep JSON, 10 MB messages, wrong types for every field,
floods of 10,000 messages, unopened contexts, too many contexts, 500 open/close cycles and
clients that vanish mid-audio (tests/support/hostile_*_cases.py).

Each case checks the answers it gets (the protocol's own error shape, naming the field; never
a dropped socket without one); then, whatever the case: the client's slots are free within
1 s of its leaving, another client's request is served within 5 s, and the service logged no
traceback. One service for the module, with a log of its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import hostile_http_cases, hostile_ws_cases
from tests.support.hostile_sockets import VOICE
from tests.support.server import Server
from tests.support.voices import clip_bytes

FREED_WITHIN = 1.0
SERVED_WITHIN = 5.0
NORMAL = {"text": "Still alive.", "format": "raw_pcm", "fixed_token_count": 5}
Case = Callable[[Server, Any], Awaitable[None]]
CASES: list[tuple[Any, Case]] = [*hostile_ws_cases.CASES, *hostile_http_cases.CASES]


@pytest.fixture(scope="module")
def service(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("hostile")
    service = Server(english_dir, workdir, workers_per_device=1, concurrent_requests_per_worker=8,
                     tts_server_routes=True)  # fmt: skip
    (service.preloaded_dir / VOICE).write_bytes(clip_bytes(workdir))
    with service.running(log=workdir / "service.log"):
        yield service


@pytest.mark.parametrize(
    ("target", "case"), CASES, ids=[f"{target.name}-{case.__name__}" for target, case in CASES]
)
@pytest.mark.timeout(600)  # the first case starts the service: minutes on a loaded machine
async def test_a_hostile_client_is_answered_and_leaves_the_service_as_it_was(
    service: Server, target: Any, case: Case
) -> None:
    assert service.log is not None
    logged = service.log.stat().st_size
    await case(service, target)
    left = time.monotonic()
    await _until_idle(service, left)
    await _another_client_is_served(service)
    log = service.log.read_bytes()[logged:].decode(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-6000:]


async def _until_idle(service: Server, left: float) -> None:
    """Active requests back to 0 within FREED_WITHIN of the client's leaving."""
    while (active := service.status()["service"]["active_requests"]) != 0:
        waited = time.monotonic() - left
        assert waited < FREED_WITHIN, f"{active} requests still active {waited:.2f} s after"
        await asyncio.sleep(0.02)


async def _another_client_is_served(service: Server) -> None:
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{service.url}/tts/generate", json=NORMAL,
                                     headers=service.headers)  # fmt: skip
    took = time.monotonic() - started
    assert response.status_code == 200 and len(response.content) > 0, response.text
    assert took < SERVED_WITHIN, f"another client waited {took:.1f} s"
