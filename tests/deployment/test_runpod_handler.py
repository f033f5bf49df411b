"""RunPod Serverless queue mode on the tiny checkpoint: the SDK's local test server and the
handler's streaming, through the real processes."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest

from app.runpod_handler import Handler, describe_error
from tests.support.server import API_KEY, SAMPLES_PER_TOKEN, Server, free_port

TOKENS = 100  # 4 s of audio


@pytest.fixture(scope="module")
def queue_worker(english_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m app`` with SERVICE_MODE=runpod-queue under the SDK's local API server."""
    workdir = tmp_path_factory.mktemp("runpod")
    service = Server(english_dir, workdir, service_mode="runpod-queue", api_key="")
    api_port = free_port()
    service.start("--rp_serve_api", "--rp_api_port", str(api_port), log=workdir / "log")
    url = f"http://127.0.0.1:{api_port}"
    try:
        wait_listening(url, service, workdir / "log")
        yield url
    finally:
        assert service.stop() == 0, (workdir / "log").read_text()[-3000:]


def wait_listening(url: str, service: Server, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert service.process is not None
        assert service.process.poll() is None, log.read_text()[-3000:]
        try:
            httpx.get(f"{url}/docs", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.5)
    raise TimeoutError(log.read_text()[-3000:])


def decode_duration(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
        return float(samples / container.streams.audio[0].rate)


def test_runsync_returns_the_streamed_audio_chunks(queue_worker: str) -> None:
    job = {"text": "Hello from RunPod.", "format": "mp3", "seed": 3}
    job |= {"fixed_token_count": TOKENS, "audio_tokens_per_slice": 20}
    response = httpx.post(f"{queue_worker}/runsync", json={"input": job}, timeout=120)
    body = response.json()
    assert body["status"] == "COMPLETED", body
    *chunks, summary = body["output"]
    assert len(chunks) >= 3, "audio came out in one piece, not as a stream"
    assert [c["seq"] for c in chunks] == list(range(len(chunks)))
    assert {c["content_type"] for c in chunks} == {"audio/mpeg"}
    audio = b"".join(base64.b64decode(c["audio"]) for c in chunks)
    assert summary["done"] is True and summary["bytes"] == len(audio)
    seconds = TOKENS * SAMPLES_PER_TOKEN / 24000
    assert decode_duration(audio) == pytest.approx(seconds, abs=0.1)


def test_a_bad_job_ends_with_an_error_naming_the_field(queue_worker: str) -> None:
    job = {"input": {"text": "Hi.", "voice_id": "nobody"}}
    output = httpx.post(f"{queue_worker}/runsync", json=job, timeout=60).json()["output"]
    assert output == [{"error": "voice_not_found: voice 'nobody' not found (field: voice_id)"}]


class FakeServiceProcess:
    """What Handler needs of ServiceProcess, pointing at the session's real service."""

    def __init__(self, server: Server) -> None:
        self.url = server.url
        self.headers = {"X-API-Key": API_KEY}


def test_the_handler_yields_audio_before_the_synthesis_ends(server: Server) -> None:
    server.wait_idle()
    handler = Handler(FakeServiceProcess(server))  # type: ignore[arg-type]
    job = {"input": {"text": "Streaming.", "format": "raw_pcm", "fixed_token_count": TOKENS}}

    async def collect() -> list[tuple[float, dict[str, Any]]]:
        started = time.perf_counter()
        return [(time.perf_counter() - started, item) async for item in handler.run(job)]

    items = asyncio.run(collect())
    first_audio, last = items[0][0], items[-1][0]
    assert "audio" in items[0][1] and items[-1][1]["done"]
    assert last - first_audio > 0.5, "every chunk arrived at the end: nothing was streamed"
    pcm_bytes = sum(len(base64.b64decode(i["audio"])) for _, i in items if "audio" in i)
    assert pcm_bytes == TOKENS * SAMPLES_PER_TOKEN * 2


def test_describe_error_reads_the_service_error_shape() -> None:
    body = b'{"error": {"code": "invalid_request", "message": "too long", "field": "text"}}'
    assert describe_error(body, 422) == "invalid_request: too long (field: text)"
    assert describe_error(b"<html>", 502) == "HTTP 502: <html>"
