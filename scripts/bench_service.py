"""Benchmark the service end to end: time to first audio over HTTP against the engine's own,
how fast a disconnected client's slot is freed, and N concurrent streams.

    python scripts/bench_service.py --model-path .cache/checkpoints/chatterbox-tiny

It starts the real service (``python -m app``, ``--workers`` CPU or GPU workers) on a free port,
and loads the same checkpoint in this process for the engine-only baseline; runs alternate
between the two so that machine noise falls on both. Results go to stdout and ``--out`` (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
KEY = "bench-key"
TEXT = "Streaming speech should start at once, long before the sentence is done."
WAV_HEADER = 44


def report(result: dict[str, Any], out: Path | None) -> None:
    """Print a benchmark's result as JSON and, with ``--out``, write it there too."""
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


def service_options(description: str | None, slots: int, runs: int) -> argparse.ArgumentParser:
    """The options of a benchmark against the running service (start_service reads them)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1, help="WORKERS_PER_DEVICE")
    parser.add_argument("--slots", type=int, default=slots, help="CONCURRENT_REQUESTS_PER_WORKER")
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--out", type=Path)
    return parser


def parse_args() -> argparse.Namespace:
    parser = service_options(__doc__, slots=8, runs=7)
    parser.add_argument("--tokens", type=int, default=100, help="fixed_token_count per request")
    parser.add_argument("--concurrent", type=int, default=8)
    return parser.parse_args()


def start_service(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "API_KEY": KEY,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MODEL_PATH": args.model_path,
        "DEVICE": args.device,
        "WORKERS_PER_DEVICE": str(args.workers),
        "CONCURRENT_REQUESTS_PER_WORKER": str(args.slots),
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen([sys.executable, "-m", "app"], env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the service did not become ready")


def load_engine(args: argparse.Namespace) -> Any:
    from worker.engine.model.loading import load_model
    from worker.engine.pipeline import StreamingEngine

    return StreamingEngine(load_model(args.model_path, device=args.device), slots=1)


async def engine_first_audio(engine: Any, seed: int, tokens: int) -> float:
    from common.params import SynthesisParams

    params = SynthesisParams(seed=seed, fixed_token_count=tokens)
    started = time.perf_counter()
    stream = await engine.synthesize(TEXT, params)
    first = None
    async for _ in stream:
        first = first or time.perf_counter() - started
    assert first is not None
    return first


async def http_first_audio(client: httpx.AsyncClient, url: str, seed: int, tokens: int) -> float:
    params = {"text": TEXT, "seed": seed, "fixed_token_count": tokens, "format": "raw_pcm"}
    started = time.perf_counter()
    first = None
    async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            if chunk and first is None:
                first = time.perf_counter() - started
    assert first is not None
    return first


async def active_requests(client: httpx.AsyncClient, url: str) -> int:
    status = (await client.get(f"{url}/system-status")).json()
    return int(status["service"]["active_requests"])


async def slot_release(client: httpx.AsyncClient, url: str) -> float:
    """Seconds from closing a stream mid-way to its slot being free (polled every ~2 ms)."""
    params = {"text": TEXT, "fixed_token_count": 3000, "format": "raw_pcm"}
    async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
        async for chunk in response.aiter_raw():
            if chunk:
                break
        closed = time.perf_counter()
    while await active_requests(client, url):
        await asyncio.sleep(0.002)
    return time.perf_counter() - closed


async def voice_first_use(client: httpx.AsyncClient, url: str, voices: int) -> dict[str, Any]:
    """Time to first audio with a just-uploaded voice (conditioning computed on this request)
    and with the same voice again (cached in the worker)."""
    import io

    from tests.support.audio_files import write_audio
    from worker.engine.model.random_checkpoint import reference_clip

    first, cached = [], []
    for seed in range(voices):
        path = Path(f"/tmp/bench-voice-{seed}.wav")
        write_audio(path, reference_clip(10.0, seed=100 + seed), 24000)
        files = {"file": (f"bench-{seed}-{time.time_ns()}.wav", io.BytesIO(path.read_bytes()))}
        voice_id = (await client.post(f"{url}/voices", files=files)).json()["voice_id"]
        for timings in (first, cached):
            params = {"text": TEXT, "voice_id": voice_id, "fixed_token_count": 50,
                      "format": "raw_pcm"}  # fmt: skip
            started = time.perf_counter()
            async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
                response.raise_for_status()
                async for chunk in response.aiter_raw():
                    if chunk:
                        timings.append(time.perf_counter() - started)
                        break
        await client.delete(f"{url}/voices/{voice_id}")
    return {
        "first_use_first_audio_s": [round(x, 3) for x in first],
        "cached_first_audio_s": [round(x, 3) for x in cached],
        "median_first_use_s": round(statistics.median(first), 3),
        "median_cached_s": round(statistics.median(cached), 3),
    }


async def concurrent(client: httpx.AsyncClient, url: str, n: int, tokens: int) -> dict[str, Any]:
    async def one(seed: int) -> tuple[float, float, int]:
        params = {"text": TEXT, "seed": seed, "fixed_token_count": tokens, "format": "wav"}
        started = time.perf_counter()
        first, body = None, b""
        async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > WAV_HEADER and first is None:
                    first = time.perf_counter() - started
        assert first is not None
        return first, time.perf_counter() - started, (len(body) - WAV_HEADER) // 2

    results = await asyncio.gather(*(one(seed) for seed in range(n)))
    expected = tokens * 960
    return {
        "streams": n,
        "all_complete_and_correct_length": all(r[2] == expected for r in results),
        "first_audio_s": [round(r[0], 3) for r in results],
        "total_s": [round(r[1], 3) for r in results],
    }


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    engine = load_engine(args)
    headers = {"X-API-Key": KEY}
    async with httpx.AsyncClient(headers=headers, timeout=600) as client:
        await http_first_audio(client, url, 0, args.tokens)  # warm both sides
        await engine_first_audio(engine, 0, args.tokens)
        engine_runs, http_runs = [], []
        for seed in range(1, args.runs + 1):
            engine_runs.append(await engine_first_audio(engine, seed, args.tokens))
            http_runs.append(await http_first_audio(client, url, seed, args.tokens))
        releases = [await slot_release(client, url) for _ in range(args.runs)]
        load = await concurrent(client, url, args.concurrent, args.tokens)
        voices = await voice_first_use(client, url, args.runs)
    engine.close()
    med_engine, med_http = statistics.median(engine_runs), statistics.median(http_runs)
    return {
        "tokens": args.tokens,
        "engine_first_audio_s": [round(x, 4) for x in engine_runs],
        "http_first_audio_s": [round(x, 4) for x in http_runs],
        "median_engine_first_audio_s": round(med_engine, 4),
        "median_http_first_audio_s": round(med_http, 4),
        "http_overhead_ms": round((med_http - med_engine) * 1000, 1),
        "slot_release_ms": [round(x * 1000, 1) for x in releases],
        "median_slot_release_ms": round(statistics.median(releases) * 1000, 1),
        "concurrent": load,
        "voices": voices,
    }


def serve_and_report(
    args: argparse.Namespace,
    run: Callable[[argparse.Namespace, str], Awaitable[dict[str, Any]]],
) -> None:
    """Start the service, ``run`` a benchmark against its URL, stop it, report the result."""
    process, url = start_service(args)
    try:
        result = asyncio.run(run(args, url))
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
    report(result, args.out)


def main() -> None:
    serve_and_report(parse_args(), bench)


if __name__ == "__main__":
    main()
