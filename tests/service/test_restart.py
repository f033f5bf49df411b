"""Kills, one service through all of them (two workers of its own, so the kills disturb no other
test; its output, the workers' too, goes to a file the tests read):

- a worker killed with ``kill -9`` serves again within seconds (issue 20): the fork server has
  torch, transformers and chatterbox imported already, so a restart costs the model load alone;
- the fork server killed with ``kill -9`` (issue 26): both workers carry on, a stream in flight
  completes, and a new fork server is started at once, so a worker killed afterwards is back
  within seconds as well;
- a stream cut by its worker's death is one line in the log, and no kill leaves a traceback;
- the master killed: its forked workers, whose parent is the fork server, exit by themselves.

The tests run in order, each on what the one before left.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.server import SAMPLES_PER_TOKEN, Server, parse_wav

RESTART_LIMIT_S = 10.0  # a killed worker is ready again within this, the fork server warm
WARM_LIMIT_S = 180.0  # a new fork server's imports, on a loaded 2-core machine
LONG_TOKENS = 120  # a stream still in flight after its first chunk, even on an idle machine


@pytest.fixture(scope="module")
def pair(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    service = Server(
        english_dir, tmp_path_factory.mktemp("restart"), workers_per_device=2,
        concurrent_requests_per_worker=2,
    )  # fmt: skip
    with service.running(log=service.workdir / "service.log"):
        yield service


def log_text(server: Server) -> str:
    assert server.log is not None
    return server.log.read_text(errors="replace")


def wait_for(what: str, check: Callable[[], Any], limit: float) -> Any:
    """``check()``'s first true answer, polled; fails naming ``what`` after ``limit`` s."""
    deadline = time.monotonic() + limit
    while not (answer := check()):
        assert time.monotonic() < deadline, f"{what}: not within {limit:g} s"
        time.sleep(0.05)
    return answer


def workers(server: Server) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = server.status()["workers"]
    return found


def busy_workers(server: Server) -> list[dict[str, Any]]:
    return [w for w in workers(server) if w["active_requests"]]


def speak(server: Server) -> None:
    params = {"text": "Back again.", "seed": 3, "fixed_token_count": 10}
    response = httpx.get(
        f"{server.url}/tts/generate", params=params, headers=server.headers, timeout=60
    )
    assert response.status_code == 200, response.text
    assert len(parse_wav(response.content)[1]) == 10 * SAMPLES_PER_TOKEN


def long_stream(server: Server, seed: int) -> Any:
    params = {"text": "A longer reply.", "seed": seed, "fixed_token_count": LONG_TOKENS}
    url = f"{server.url}/tts/generate"
    return httpx.stream("GET", url, params=params, headers=server.headers, timeout=120)


def kill_and_time_return(server: Server, worker: dict[str, Any]) -> float:
    """Seconds from ``kill -9`` of ``worker`` until it is ready again, in a new process."""
    killed_at = time.monotonic()
    os.kill(worker["pid"], signal.SIGKILL)

    def back() -> bool:
        now = next(w for w in workers(server) if w["worker_id"] == worker["worker_id"])
        return bool(now["state"] == "ready" and now["pid"] != worker["pid"])

    wait_for(f"{worker['worker_id']} ready again after its kill", back, RESTART_LIMIT_S)
    return time.monotonic() - killed_at


def fork_servers(server: Server) -> list[psutil.Process]:
    """The master's children that run multiprocessing's fork server with our preload."""
    assert server.process is not None
    found = []
    for child in psutil.Process(server.process.pid).children():
        try:
            if "worker.preload" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_killed_worker_serves_again_within_seconds(pair: Server) -> None:
    speak(pair)
    before = pair.wait_idle()["workers"][0]
    print(f"worker back {kill_and_time_return(pair, before):.1f} s after its kill")
    speak(pair)
    assert workers(pair)[0]["restarts"] == 1


def test_the_worker_log_reaches_the_service_log(pair: Server) -> None:
    """A forked worker writes to the master's stdout/stderr, as a plain subprocess does."""
    text = log_text(pair)
    assert "[cpu-w0]" in text and "ready" in text


def test_workers_outlive_their_fork_server(pair: Server) -> None:
    before = {w["worker_id"]: (w["pid"], w["restarts"]) for w in pair.wait_idle()["workers"]}
    [fork_server] = fork_servers(pair)
    with long_stream(pair, seed=5) as stream:
        chunks = stream.iter_bytes()
        received = next(chunks)
        assert busy_workers(pair), "the stream ended before the kill"
        fork_server.kill()
        received += b"".join(chunks)
    assert len(parse_wav(received)[1]) == LONG_TOKENS * SAMPLES_PER_TOKEN
    speak(pair)
    wait_for("a new fork server ready", lambda: "fork server is ready" in log_text(pair),
             WARM_LIMIT_S)  # fmt: skip
    assert [p.pid for p in fork_servers(pair)] not in ([], [fork_server.pid])
    after = workers(pair)
    assert {w["worker_id"]: (w["pid"], w["restarts"]) for w in after} == before
    assert all(w["state"] == "ready" for w in after), after
    assert "is gone; exiting" not in log_text(pair)


def test_a_worker_killed_after_its_fork_server_is_back_within_seconds(pair: Server) -> None:
    """It was forked by the fork server killed above: the new one forks its successor, warm."""
    victim = pair.wait_idle()["workers"][1]
    print(f"worker back {kill_and_time_return(pair, victim):.1f} s after its kill")
    speak(pair)


def test_a_stream_cut_by_its_worker_s_death_is_one_line_in_the_log(pair: Server) -> None:
    pair.wait_idle()
    with long_stream(pair, seed=7) as stream:
        chunks = stream.iter_bytes()
        next(chunks)
        serving = wait_for("a worker serving the stream", lambda: busy_workers(pair), 30)
        os.kill(serving[0]["pid"], signal.SIGKILL)
        with pytest.raises(httpx.RemoteProtocolError):  # cut, never a short file that looks whole
            b"".join(chunks)
    wait_for("the cut stream logged", lambda: "ended early" in log_text(pair), 30)
    pair.wait_idle()


def test_no_kill_left_a_traceback(pair: Server) -> None:
    text = log_text(pair)
    assert "the fork server has died" in text
    assert "Traceback" not in text, text[text.index("Traceback") - 2000 :][:6000]


def test_forked_workers_exit_when_their_master_is_killed(pair: Server) -> None:
    """Their parent is the fork server, which outlives the master: they must notice by
    themselves."""
    pids = [w["pid"] for w in pair.wait_idle()["workers"]]
    assert pair.process is not None
    pair.process.kill()
    pair.process.wait()

    def exited(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for("the workers exit after their master", lambda: all(map(exited, pids)), 10)
