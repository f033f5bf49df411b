"""Benchmark concurrency: 1, 4, 8, 16 (or ``--streams``) streams at once on one checkpoint.

    python scripts/bench_concurrency.py --model-path .cache/checkpoints/chatterbox-tiny
    python scripts/bench_concurrency.py --model-path DIR --via http      # through the service

For each number of concurrent streams, every stream asks for the same text with
``fixed_token_count=--tokens`` (raw 24 kHz PCM) and a seed of its own; the level is run
``--runs`` times, the levels taking turns so that machine drift falls on all alike. Reported
per level: aggregate speed (seconds of audio produced per second of
wall time, all streams together: "x real time"), time to first audio p50/p95 over every stream
of every run, whether every stream got exactly its audio, and T3 alone (the same number of
sequences, nothing else running) in tokens per second; then each level's ratios against one
stream. ``--via engine`` (default) drives the engine in this process; ``--via http`` starts the
service (``python -m app``, one worker with as many slots as the largest level) and streams
``GET /tts/generate``. JSON to stdout and ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import machine  # noqa: E402
from bench_service import KEY, report, start_service  # noqa: E402

from common.params import SynthesisParams  # noqa: E402
from common.settings import KV_CACHE_TOKENS  # noqa: E402
from worker.engine.model.loading import LoadedModel, load_model  # noqa: E402
from worker.engine.pipeline import StreamingEngine  # noqa: E402
from worker.engine.t3.batcher import T3Batcher  # noqa: E402
from worker.engine.t3.prompts import prompt_overhead  # noqa: E402
from worker.engine.t3.runner import T3Prompt  # noqa: E402
from worker.engine.t3.sampling import sampling_config  # noqa: E402
from worker.engine.t3.scheduler import T3Sequence  # noqa: E402
from worker.engine.t3.token_buffer import TokenBuffer  # noqa: E402

TEXT = "Streaming speech should start at once, long before the sentence is done."
SAMPLES_PER_TOKEN = 960
Stream = Callable[[int], Awaitable[tuple[float, int]]]  # seed -> (first audio s, samples)
Run = tuple[float, list[float], bool]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="T3's dtype (MODEL_DTYPE)")
    parser.add_argument("--streams", default="1,4,8,16", help="comma-separated levels")
    parser.add_argument("--tokens", type=int, default=100, help="fixed_token_count per stream")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--via", choices=("engine", "http"), default="engine")
    parser.add_argument("--out", type=Path)
    return parser.parse_args()


def engine_stream(engine: StreamingEngine, tokens: int) -> Stream:
    async def one(seed: int) -> tuple[float, int]:
        params = SynthesisParams(seed=seed, fixed_token_count=tokens)
        started = time.perf_counter()
        first, samples = None, 0
        async for chunk in await engine.synthesize(TEXT, params):
            first = first if first is not None else time.perf_counter() - started
            samples += len(chunk.pcm)
        assert first is not None
        return first, samples

    return one


def http_stream(client: Any, url: str, tokens: int) -> Stream:
    async def one(seed: int) -> tuple[float, int]:
        params = {"text": TEXT, "seed": seed, "fixed_token_count": tokens, "format": "raw_pcm"}
        started = time.perf_counter()
        first, size = None, 0
        async with client.stream("GET", f"{url}/tts/generate", params=params) as response:
            response.raise_for_status()
            async for chunk in response.aiter_raw():
                first = first if first is not None else time.perf_counter() - started
                size += len(chunk)
        assert first is not None
        return first, size // 2

    return one


async def one_run(stream: Stream, streams: int, seed: int, samples: int) -> Run:
    """(seconds of audio per second of wall time, each stream's first audio, every stream got
    exactly ``samples``)."""
    started = time.perf_counter()
    results = await asyncio.gather(*(stream(seed + s) for s in range(streams)))
    wall = time.perf_counter() - started
    audio = sum(got for _, got in results) / 24000
    complete = all(got == samples for _, got in results)
    return audio / wall, [first for first, _ in results], complete


def summarize(streams: int, runs: list[Run]) -> dict[str, Any]:
    firsts = [first for _, run, _ in runs for first in run]
    return {
        "streams": streams,
        "x_real_time": round(statistics.median(speed for speed, _, _ in runs), 3),
        "first_audio_p50_s": round(float(np.percentile(firsts, 50)), 3),
        "first_audio_p95_s": round(float(np.percentile(firsts, 95)), 3),
        "every_stream_complete": all(complete for _, _, complete in runs),
    }


async def t3_tokens_per_second(model: LoadedModel, streams: int, tokens: int) -> float:
    """T3 alone: ``streams`` sequences of ``tokens`` tokens stepped together."""
    t3 = T3Batcher(model, streams, KV_CACHE_TOKENS)
    params = SynthesisParams(seed=1)
    voice = model.builtin_voice
    assert voice is not None
    buffers = []
    try:
        for i in range(streams):
            buffer = TokenBuffer(tokens, t3.wake)
            ids = model.tokenize(TEXT, None)
            prompt = T3Prompt(voice, 0.5, ids)
            length = prompt_overhead(model, voice) + len(ids)
            t3.add(T3Sequence(
                prompt=prompt, prompt_length=length, budget=tokens,
                sampling=sampling_config(model.variant, params),
                cfg_weight=0.5, ignore_eos=True, generator=random.Random(i),
                on_tokens=buffer.push, on_error=buffer.fail,
            ))  # fmt: skip
            buffers.append(buffer)
        started = time.perf_counter()
        for buffer in buffers:
            while not buffer.done:
                await buffer.take(tokens)
        return streams * tokens / (time.perf_counter() - started)
    finally:
        t3.close()


def ratios(levels: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    one = levels[0]
    return {
        str(lv["streams"]): {
            "x_real_time": round(lv["x_real_time"] / one["x_real_time"], 2),
            "first_audio_p50": round(lv["first_audio_p50_s"] / one["first_audio_p50_s"], 2),
            "t3_tokens_per_s": round(lv["t3_tokens_per_s"] / one["t3_tokens_per_s"], 2),
        }
        for lv in levels[1:]
    }


async def sweep(args: argparse.Namespace, model: LoadedModel, stream: Stream) -> dict[str, Any]:
    """Every level once per round, ``--runs`` rounds: machine drift falls on all levels alike."""
    counts = [int(n) for n in args.streams.split(",")]
    samples = args.tokens * SAMPLES_PER_TOKEN
    await stream(0)  # warm up
    runs: dict[int, list[Run]] = {n: [] for n in counts}
    speeds: dict[int, list[float]] = {n: [] for n in counts}
    for round_ in range(args.runs):
        for n in counts:
            runs[n].append(await one_run(stream, n, 1000 * round_ + 100 * n, samples))
        for n in counts:
            speeds[n].append(await t3_tokens_per_second(model, n, args.tokens))
    levels = [summarize(n, runs[n]) for n in counts]
    for result in levels:
        result["t3_tokens_per_s"] = round(statistics.median(speeds[result["streams"]]), 1)
        print(json.dumps(result), file=sys.stderr)
    return {"levels": levels, "ratios_to_one_stream": ratios(levels)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    model = load_model(args.model_path, device=args.device, dtype=args.dtype)
    slots = max(int(n) for n in args.streams.split(","))
    if args.via == "engine":
        engine = StreamingEngine(model, slots=slots)
        try:
            return await sweep(args, model, engine_stream(engine, args.tokens))
        finally:
            engine.close()
    import httpx

    service = argparse.Namespace(
        model_path=args.model_path, device=args.device, workers=1, slots=slots
    )
    process, url = start_service(service)
    try:
        async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=600) as client:
            return await sweep(args, model, http_stream(client, url, args.tokens))
    finally:
        process.terminate()
        process.wait(timeout=120)


def main() -> None:
    args = parse_args()
    result = {
        "machine": machine(),
        "checkpoint": args.model_path,
        "via": args.via,
        "tokens": args.tokens,
        "runs": args.runs,
        "dtype": args.dtype,
        **asyncio.run(run(args)),
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
