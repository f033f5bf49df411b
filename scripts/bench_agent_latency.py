"""Time from a sentence's end to its first audio, with the text streamed in a word at a time as
an LLM writes it: our ``WS /tts/stream`` against ElevenLabs' ``multi-stream-input`` (as Pipecat
and LiveKit connect: ``auto_mode=true``), on one service, runs alternated so that machine noise
falls on both.

    python scripts/bench_agent_latency.py --model-path .cache/checkpoints/chatterbox-tiny

Both protocols get the same messages: each word with its trailing space, 20 ms apart, so the
first sentence is complete with the message that carries its last word; the clock runs from
sending that message to the first audio. A third series sends the sentence whole without a
trailing space, as Pipecat's ElevenLabsTTSService does. Each run is stopped at its first audio.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.bench_service import KEY, serve_and_report, service_options  # noqa: E402

SENTENCE = "The keeper climbed the stairs every evening to light the lamp."
REST = " He counted every step as he went."
GAP_S = 0.02


def parse_args() -> argparse.Namespace:
    return service_options(__doc__, slots=4, runs=10).parse_args()


def words(text: str) -> list[str]:
    return [f"{word} " for word in text.split()]


async def tts_stream(ws_base: str, voice: str) -> float:
    async with websockets.connect(f"{ws_base}/tts/stream?api_key={KEY}") as ws:
        await ws.send(json.dumps({"type": "start", "voice_id": voice, "format": "raw_pcm"}))
        while json.loads(await ws.recv()).get("type") != "started":
            pass
        sent = 0.0
        for word in words(SENTENCE):
            await ws.send(json.dumps({"type": "text", "text": word}))
            sent = time.perf_counter()
            await asyncio.sleep(GAP_S)
        while not isinstance(await ws.recv(), bytes):
            pass
        first = time.perf_counter() - sent
        await ws.send(json.dumps({"type": "text", "text": REST}))
        await ws.send(json.dumps({"type": "cancel"}))
    return first


async def elevenlabs(ws_base: str, voice: str, whole_sentence: bool) -> float:
    url = f"{ws_base}/v1/text-to-speech/{voice}/multi-stream-input?output_format=pcm_24000"
    async with websockets.connect(f"{url}&auto_mode=true&xi-api-key={KEY}") as ws:
        await ws.send(json.dumps({"text": " ", "context_id": "c"}))
        pieces = [SENTENCE] if whole_sentence else words(SENTENCE)
        sent = 0.0
        for piece in pieces:
            await ws.send(json.dumps({"text": piece, "context_id": "c"}))
            sent = time.perf_counter()
            await asyncio.sleep(GAP_S)
        while not json.loads(await ws.recv()).get("audio"):
            pass
        first = time.perf_counter() - sent
        await ws.send(json.dumps({"context_id": "c", "close_context": True}))
        await ws.send(json.dumps({"close_socket": True}))
    return first


async def upload_voice(url: str) -> str:
    from tests.support.audio_files import write_audio
    from worker.engine.model.random_checkpoint import reference_clip

    path = Path("/tmp/bench-agent-voice.wav")
    write_audio(path, reference_clip(10.0, seed=100), 24000)
    files = {"file": (f"agent-{time.time_ns()}.wav", io.BytesIO(path.read_bytes()))}
    async with httpx.AsyncClient(headers={"X-API-Key": KEY}, timeout=120) as client:
        response = await client.post(f"{url}/voices", files=files)
        response.raise_for_status()
        return str(response.json()["voice_id"])


async def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    voice = await upload_voice(url)
    ws_base = url.replace("http://", "ws://")
    series: dict[str, Callable[[], Awaitable[float]]] = {
        "tts_stream": lambda: tts_stream(ws_base, voice),
        "elevenlabs": lambda: elevenlabs(ws_base, voice, whole_sentence=False),
        "elevenlabs_whole_sentence": lambda: elevenlabs(ws_base, voice, whole_sentence=True),
    }
    for run in series.values():  # warm: the voice's conditioning, the encoders
        await run()
    times: dict[str, list[float]] = {name: [] for name in series}
    for _ in range(args.runs):
        for name, run in series.items():
            times[name].append(await run())
    result: dict[str, Any] = {"text": SENTENCE, "runs": args.runs}
    for name, measured in times.items():
        result[f"{name}_first_audio_ms"] = [round(t * 1000, 1) for t in measured]
        result[f"median_{name}_ms"] = round(statistics.median(measured) * 1000, 1)
    return result


def main() -> None:
    serve_and_report(parse_args(), bench)


if __name__ == "__main__":
    main()
