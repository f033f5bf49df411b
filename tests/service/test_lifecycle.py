"""Start-up and shutdown of the real service: configuration checks, /ping, SIGTERM drain."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.sync.client import connect

from tests.support.server import API_KEY, REPO, SAMPLES_PER_TOKEN, Server, parse_wav


def run_app(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env}
    return subprocess.run(
        [sys.executable, "-m", "app"], env=environment, cwd=tmp_path,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"PORT": "eighty", "API_KEY": "k"}, "PORT"),
        ({"WORKERS_PER_DEVICE": "0", "API_KEY": "k"}, "WORKERS_PER_DEVICE"),
        ({"TTS_CHUNK_OVERLAP_STRATEGY": "half", "API_KEY": "k"}, "TTS_CHUNK_OVERLAP_STRATEGY"),
        ({"HOST": "0.0.0.0"}, "API_KEY"),  # no key on a public interface: refuse to run open
    ],
)
def test_a_bad_configuration_stops_start_up_naming_the_variable(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = run_app(tmp_path, **env)
    assert result.returncode == 2
    assert named in result.stderr and "Traceback" not in result.stderr


def test_ping_says_initializing_then_ready_and_sigterm_drains(
    english_dir: Path, tmp_path: Path
) -> None:
    server = Server(
        english_dir, tmp_path, shutdown_timeout_seconds=60, concurrent_requests_per_worker=2
    ).start()
    with contextlib.ExitStack() as closing:
        closing.callback(server.stop)
        assert _first_ping(server) == 204  # up, workers still loading the model
        server.wait_ready()
        assert httpx.get(f"{server.url}/ping").status_code == 200
        workers = [psutil.Process(pid) for pid in server.worker_pids()]
        ws = closing.enter_context(connect(f"{server.ws_url}?api_key={API_KEY}"))
        ws.send(json.dumps({"type": "start", "format": "raw_pcm", "fixed_token_count": 20}))
        assert json.loads(ws.recv())["type"] == "started"
        params = {"text": "Finish what you started.", "seed": 5, "fixed_token_count": 150}
        with httpx.stream("GET", f"{server.url}/tts/generate", params=params,
                          headers=server.headers, timeout=120) as response:  # fmt: skip
            chunks = response.iter_bytes()
            body = next(chunks) + next(chunks)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            refused = httpx.get(f"{server.url}/tts/generate", params=params,
                                headers=server.headers, timeout=10)  # fmt: skip
            assert refused.status_code == 503 and "retry-after" in refused.headers
            assert httpx.get(f"{server.url}/ping").status_code == 503
            body += b"".join(chunks)
        ws.send(json.dumps({"type": "text", "text": "The socket finishes its utterance too."}))
        ws.send(json.dumps({"type": "end"}))
        audio = b""
        while isinstance(message := ws.recv(timeout=60), bytes):
            audio += message
        assert json.loads(message)["type"] == "done"
        assert len(audio) == 20 * SAMPLES_PER_TOKEN * 2
        assert len(parse_wav(body)[1]) == 150 * SAMPLES_PER_TOKEN  # in-flight work finished
        assert server.process.wait(timeout=60) == 0
        assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)


def _first_ping(server: Server) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            return httpx.get(f"{server.url}/ping", timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError("the master did not answer within 30 s")
