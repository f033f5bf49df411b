"""Running the real service (``python -m app`` and its worker processes) for tests."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[2]
API_KEY = "test-key-1"
OTHER_KEY = "test-key-2"
SAMPLES_PER_TOKEN = 960


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The master process on a free port; its workers are its children."""

    def __init__(self, checkpoint: Path, workdir: Path, **env: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/tts/stream"
        self.voices_dir = Path(env.pop("voices_dir", workdir / "voices"))
        self.voices_dir.mkdir(parents=True, exist_ok=True)
        self.preloaded_dir = workdir / "preloaded"
        self.preloaded_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "HF_HUB_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "API_KEY": f"{API_KEY},{OTHER_KEY}",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "MODEL_PATH": str(checkpoint),
            "DEVICE": "cpu",
            "VOICES_DIR": str(self.voices_dir),
            "PRELOADED_VOICES_DIR": str(self.preloaded_dir),
            "LOG_LEVEL": "INFO",
            **{k.upper(): str(v) for k, v in env.items()},
        }
        # cwd is a scratch directory so a developer's ./.env cannot change the test server.
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None  # where its output (master and workers) goes, if anywhere

    def start(self, *args: str, log: Path | None = None) -> Server:
        """``python -m app *args``; its output (master and workers) to ``log`` if given."""
        self.log = log
        output = log.open("wb") if log is not None else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            env=self.env,
            cwd=self.workdir,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
        )
        if output is not None:
            output.close()  # the child holds its own copy
        return self

    @contextmanager
    def running(self, log: Path | None = None) -> Iterator[Server]:
        """Started and ready inside the block (for fixtures); stopped after it, whatever
        happened."""
        self.start(log=log)
        try:
            self.wait_ready()
            yield self
        finally:
            self.stop()

    def wait_ready(self, timeout: float = 180.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, "server exited"
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    body: dict[str, Any] = response.json()
                    return body
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not become ready")

    def wait_idle(self, timeout: float = 180.0) -> dict[str, Any]:
        """Every worker ready and nothing in flight: a clean slate for the next test."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            workers = status["workers"]
            if all(w["state"] == "ready" and w["active_requests"] == 0 for w in workers):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"workers not idle: {workers}")
            time.sleep(0.05)

    def status(self) -> dict[str, Any]:
        response = httpx.get(f"{self.url}/system-status", headers=self.headers, timeout=5)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": API_KEY}

    def worker_pids(self) -> list[int]:
        return [int(w["pid"]) for w in self.status()["workers"] if w["pid"]]

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def parse_wav(data: bytes) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples) of a streamed WAV (header sizes 0xFFFFFFFF)."""
    assert data[:4] == b"RIFF" and data[8:16] == b"WAVEfmt ", "not a WAV header"
    fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[20:36])
    assert (fmt, channels, bits) == (1, 1, 16)
    assert data[36:40] == b"data"
    return rate, np.frombuffer(data[44:], dtype="<i2")


def pcm(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")
