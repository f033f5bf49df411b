"""A worker killed with ``kill -9`` serves again within seconds (issue 20's acceptance): the
fork server has torch, transformers and chatterbox imported already, so a restart costs the
model load alone. Its own one-worker service, so the kill disturbs no other test."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.server import SAMPLES_PER_TOKEN, Server, parse_wav

RESTART_LIMIT_S = 10.0


@pytest.fixture(scope="module")
def lone(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    service = Server(english_dir, tmp_path_factory.mktemp("restart"), workers_per_device=1)
    log = service.workdir / "service.log"
    with service.running(log=log):
        yield service


def speak(server: Server, timeout: float = 30.0) -> httpx.Response:
    params = {"text": "Back again.", "seed": 3, "fixed_token_count": 10}
    return httpx.get(
        f"{server.url}/tts/generate", params=params, headers=server.headers, timeout=timeout
    )


def seconds_until_speech(server: Server, limit: float) -> float:
    """Seconds from now until a request is answered with its whole audio (503s retried)."""
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < limit:
        response = speak(server)
        if response.status_code == 200:
            assert len(parse_wav(response.content)[1]) == 10 * SAMPLES_PER_TOKEN
            return elapsed
        assert response.status_code == 503, response.text
        time.sleep(0.1)
    raise AssertionError(f"no speech within {limit:g} s of the kill")


def test_a_killed_worker_serves_again_within_seconds(lone: Server) -> None:
    assert speak(lone).status_code == 200
    before = lone.status()["workers"][0]
    os.kill(before["pid"], signal.SIGKILL)
    seconds_until_speech(lone, RESTART_LIMIT_S)
    after = lone.status()["workers"][0]
    assert after["pid"] != before["pid"] and after["restarts"] == 1


def test_the_worker_log_reaches_the_service_log(lone: Server) -> None:
    """A forked worker writes to the master's stdout/stderr, as a plain subprocess does."""
    text = (lone.workdir / "service.log").read_text()
    assert "[cpu-w0]" in text and "ready" in text


def test_a_forked_worker_exits_when_its_master_is_killed(lone: Server) -> None:
    """Its parent is the fork server, which outlives the master: it must notice by itself."""
    pid = lone.status()["workers"][0]["pid"]
    assert lone.process is not None
    lone.process.kill()
    lone.process.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the worker outlived its master"
        time.sleep(0.05)
