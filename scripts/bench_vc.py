"""Voice conversion's streaming figures: time to first audio and x real time for a source
recording (30 s by default), converted alone and beside TTS streams, on one engine.

    python scripts/bench_vc.py --model-path .cache/checkpoints/chatterbox-tiny --out vc.json

Random weights: the source is a synthetic speech-like recording; TTS streams speak a fixed token
count (random weights never stop). x real time = the converted audio's length / wall time from
the request to its last sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from common.params import SynthesisParams
from worker.engine.model.loading import load_model
from worker.engine.model.random_checkpoint import reference_clip
from worker.engine.pipeline import StreamingEngine, SynthesisStats
from worker.engine.vc.source_tokens import SOURCE_RATE

TEXT = "A steady stream of speech that keeps the batch busy while the conversion runs."


async def convert(engine: StreamingEngine, seconds: float) -> dict[str, Any]:
    stats = SynthesisStats()
    source = reference_clip(seconds, SOURCE_RATE, seed=1)
    async for _ in engine.convert(source, SynthesisParams(seed=1), None, stats):
        pass
    return figures(stats)


async def speak(engine: StreamingEngine, tokens: int, seed: int) -> dict[str, Any]:
    stats = SynthesisStats()
    params = SynthesisParams(seed=seed, fixed_token_count=tokens)
    async for _ in await engine.synthesize(TEXT, params, None, stats):
        pass
    return figures(stats)


def figures(stats: SynthesisStats) -> dict[str, Any]:
    wall = time.perf_counter() - stats.started
    first = None if stats.first_audio is None else stats.first_audio - stats.started
    return {
        "first_audio_ms": None if first is None else round(first * 1000, 1),
        "audio_seconds": round(stats.audio_seconds, 2),
        "wall_seconds": round(wall, 2),
        "x_real_time": round(stats.audio_seconds / wall, 2),
    }


async def run(engine: StreamingEngine, seconds: float, streams: int, tokens: int) -> dict[str, Any]:
    await convert(engine, 2.0)  # warm-up: first calls, graphs
    alone = await convert(engine, seconds)
    results = await asyncio.gather(
        convert(engine, seconds), *(speak(engine, tokens, seed) for seed in range(streams))
    )
    return {"alone": alone, "beside_tts": results[0], "tts": results[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-path", required=True)
    parser.add_argument("--device", default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tts-streams", type=int, default=4)
    parser.add_argument("--tts-tokens", type=int, default=250, help="speech tokens per stream")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    model = load_model(args.model_path, device=args.device)
    engine = StreamingEngine(model)
    try:
        result = asyncio.run(run(engine, args.seconds, args.tts_streams, args.tts_tokens))
    finally:
        engine.close()
    report = {"model": model.describe(), "source_seconds": args.seconds, **result}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
