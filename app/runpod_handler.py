"""RunPod Serverless queue endpoints: a streaming ``runpod`` handler in front of the service.

A queue endpoint receives jobs from RunPod's queue (``/run``, ``/runsync``, ``/stream``), not HTTP
requests. This module starts the same HTTP service the pods run (``python -m app``) on
127.0.0.1:``PORT`` with a key of its own, waits until its workers are ready, then hands the SDK a
generator handler that posts each job's input to ``POST /tts/generate`` and yields the audio as it
streams out, base64-encoded. Going through the service rather than the pool keeps one code path for
validation, voices, formats and limits; on localhost that costs a few milliseconds.

Selected with ``SERVICE_MODE=runpod-queue`` (``python -m app``) or run as
``python -m app.runpod_handler``; the SDK's local test server: add ``--rp_serve_api --rp_api_port
8010`` (``--test_input`` cannot run generator handlers in SDK 1.x).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from types import FrameType
from typing import Any

import httpx

from common.log_setup import configure_logging
from common.settings import Settings

log = logging.getLogger("app.runpod_handler")

Item = dict[str, Any]


class ServiceProcess:
    """The HTTP service as a child process, reachable only from this container."""

    def __init__(self, settings: Settings) -> None:
        self.key = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{settings.port}"
        env = {
            **os.environ,
            "SERVICE_MODE": "http",
            "HOST": "127.0.0.1",
            "API_KEY": self.key,
            "PORT_HEALTH": "",
        }
        self.process = subprocess.Popen([sys.executable, "-m", "app"], env=env)
        self.stopping = False

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}

    def wait_ready(self, timeout: float) -> int:
        """Block until every worker is ready; return the service's capacity (its slots)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited with status {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=2).status_code == 200:
                    status = httpx.get(f"{self.url}/system-status", headers=self.headers).json()
                    return int(status["service"]["capacity"])
            except httpx.TransportError:
                pass
            time.sleep(2.0)  # each poll is an access-log line; loading takes minutes
        raise TimeoutError(f"the service was not ready within {timeout:.0f} s")

    def stop(self) -> None:
        self.stopping = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # it finishes the requests in flight
            self.process.wait()

    def exit_with_it(self) -> None:
        """If the service dies, so does this worker: RunPod then replaces it."""

        def watch() -> None:
            status = self.process.wait()
            if not self.stopping:
                log.error("the service exited (status %s); stopping this worker", status)
                os._exit(1)

        threading.Thread(target=watch, name="service-watch", daemon=True).start()


class Handler:
    """The job handler: one synthesis per job, audio yielded as it is produced."""

    def __init__(self, service: ServiceProcess) -> None:
        self.service = service

    async def run(self, job: dict[str, Any]) -> AsyncIterator[Item]:
        """The SDK's handler: a bound async generator function (the SDK checks for one)."""
        body = job.get("input")
        if not isinstance(body, dict):
            yield {"error": "input must be an object with at least 'text'"}
            return
        url = f"{self.service.url}/tts/generate"
        timeout = httpx.Timeout(30.0, read=None)  # audio may pause while the text is long
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("POST", url, json=body, headers=self.service.headers) as response,
        ):
            if response.status_code != 200:
                yield {"error": describe_error(await response.aread(), response.status_code)}
                return
            async for item in audio_items(response, str(body.get("format") or "wav")):
                yield item


async def audio_items(response: httpx.Response, audio_format: str) -> AsyncIterator[Item]:
    """Each piece of audio as it arrives, then a summary item (``done``)."""
    meta = {
        "format": audio_format,
        "content_type": response.headers.get("Content-Type", ""),
        "sample_rate": int(response.headers.get("X-Sample-Rate", "0")) or None,
        "request_id": response.headers.get("X-Request-Id"),
    }
    seq = total = 0
    async for data in response.aiter_raw():
        if data:
            yield {"audio": base64.b64encode(data).decode("ascii"), "seq": seq, **meta}
            seq += 1
            total += len(data)
    yield {"done": True, "chunks": seq, "bytes": total, **meta}


def describe_error(body: bytes, status: int) -> str:
    """``code: message (field: name)`` from the service's JSON error, for RunPod's job error."""
    try:
        error = json.loads(body)["error"]
        text = f"{error['code']}: {error['message']}"
        return f"{text} (field: {error['field']})" if error.get("field") else text
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode(errors='replace')}"


def main(settings: Settings) -> int:
    os.environ.setdefault("RUNPOD_LOG_LEVEL", "INFO")  # the SDK's DEBUG prints every chunk
    import runpod

    configure_logging(settings.log_level, settings.log_format, "runpod-handler")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request to the service
    service = ServiceProcess(settings)

    def stop(signum: int, frame: FrameType | None) -> None:
        service.stop()
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        capacity = service.wait_ready(settings.worker_start_timeout_seconds)
    except (RuntimeError, TimeoutError) as error:
        log.error("cannot serve jobs: %s", error)
        service.stop()
        return 1
    service.exit_with_it()
    log.info("service ready: taking up to %d jobs at once", capacity)
    runpod.serverless.start(
        {
            "handler": Handler(service).run,
            "return_aggregate_stream": True,  # /runsync and /status return every item
            "concurrency_modifier": lambda current: capacity,
        }
    )
    return 0


if __name__ == "__main__":
    from .__main__ import load_settings

    sys.exit(main(load_settings()))
