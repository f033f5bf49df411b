"""Benchmark the output formats: extra time to first byte over raw_pcm, bytes per second of
audio, encoder CPU per second of audio, and what moving PCM over ZeroMQ costs instead.

    python scripts/bench_formats.py --model-path .cache/checkpoints/chatterbox-tiny

Starts the real service (as scripts/bench_service.py does). Formats are requested in rotation,
``--runs`` times each, so machine noise spreads over all of them; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_service import KEY, TEXT, report, start_service

from app.audio.encoding import FORMATS, make_encoder, output_rate

TOKENS = 100
SECONDS = TOKENS * 0.04


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    args.workers, args.slots = 1, 1
    return args


async def first_byte(client: httpx.AsyncClient, url: str, fmt: str, seed: int) -> tuple[float, int]:
    params = {"text": TEXT, "seed": seed, "fixed_token_count": TOKENS, "format": fmt}
    started = time.perf_counter()
    first, size = None, 0
    async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
        response.raise_for_status()
        async for chunk in response.aiter_raw():
            first = first or time.perf_counter() - started
            size += len(chunk)
    assert first is not None
    return first, size


async def service_figures(url: str, runs: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {name: [] for name in FORMATS}
    sizes: dict[str, int] = {}
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=600) as client:
        await first_byte(client, url, "raw_pcm", 0)
        for run in range(runs):
            for name in FORMATS:
                ttfb, sizes[name] = await first_byte(client, url, name, run + 1)
                times[name].append(ttfb)
    base = statistics.median(times["raw_pcm"])
    return {
        name: {
            "first_byte_s": round(statistics.median(times[name]), 4),
            "extra_first_byte_ms": round((statistics.median(times[name]) - base) * 1000, 1),
            "bytes_per_audio_second": round(sizes[name] / SECONDS),
        }
        for name in FORMATS
    }


def encoder_cpu(pcm: bytes, chunks: int = 10) -> dict[str, float]:
    """CPU milliseconds per second of audio, encoding ``pcm`` in ``chunks`` pieces."""
    seconds = len(pcm) / 2 / 24000
    pieces = np.array_split(np.frombuffer(pcm, dtype="<i2"), chunks)
    cost = {}
    for name in FORMATS:
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            encoder = make_encoder(name, 24000, output_rate(name, None, 24000))
            for piece in pieces:
                encoder.encode(piece.tobytes())
            encoder.finish()
            best = min(best, time.process_time() - started)
        cost[name] = round(best / seconds * 1000, 2)
    return cost


def first_chunk(pcm: bytes) -> dict[str, dict[str, float]]:
    """Per format: ms from a fresh encoder getting the first PCM chunk (16 tokens, 0.64 s, the
    engine's first window) to its bytes, and how many bytes that is (the extra time to first
    byte that encoding adds, free of the synthesis noise of a whole request)."""
    chunk = pcm[: 2 * 16 * 960]
    out = {}
    for name in FORMATS:
        times, size = [], 0
        for _ in range(20):
            encoder = make_encoder(name, 24000, output_rate(name, None, 24000))
            started = time.perf_counter()
            size = len(encoder.encode(chunk))
            times.append(time.perf_counter() - started)
        out[name] = {"ms": round(statistics.median(times) * 1000, 2), "bytes": size}
    return out


def zmq_cpu(pcm: bytes, repeats: int = 200) -> float:
    """CPU milliseconds (both ends) to move one second of PCM over ipc PUSH/PULL."""
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    pull.bind("ipc:///tmp/bench-formats.ipc")
    push = context.socket(zmq.PUSH)
    push.connect("ipc:///tmp/bench-formats.ipc")
    chunk = pcm[: 2 * 24000 // 2]  # half a second per message
    started = time.process_time()
    for _ in range(repeats):
        push.send_multipart([b'{"type":"audio"}', chunk])
        pull.recv_multipart()
    cost = (time.process_time() - started) / (repeats * 0.5) * 1000
    context.destroy(linger=0)
    return round(cost, 3)


def main() -> None:
    args = parse_args()
    process, url = start_service(args)
    try:
        figures = asyncio.run(service_figures(url, args.runs))
        params = {"text": TEXT, "seed": 1, "fixed_token_count": 250, "format": "raw_pcm"}
        pcm = httpx.get(f"{url}/tts/generate", params=params, headers={"X-API-Key": KEY},
                        timeout=600).content  # fmt: skip
    finally:
        process.terminate()
        process.wait(timeout=120)
    cpu = encoder_cpu(pcm)
    first = first_chunk(pcm)
    for name in FORMATS:
        figures[name]["encode_cpu_ms_per_audio_second"] = cpu[name]
        figures[name]["first_chunk_encode_ms"] = first[name]["ms"]
        figures[name]["first_chunk_bytes"] = first[name]["bytes"]
    result: dict[str, Any] = {
        "formats": figures,
        "zmq_ipc_cpu_ms_per_audio_second_of_pcm": zmq_cpu(pcm),
        "tokens": TOKENS,
        "runs": args.runs,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
