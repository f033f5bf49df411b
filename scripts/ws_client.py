"""Stream text to ``WS /tts/stream`` the way an LLM writes it, and save the speech as a WAV file.

    python scripts/ws_client.py "Hello there. This is streamed speech." --out hello.wav
    python scripts/ws_client.py --word-by-word --delay 0.05 "Words arrive one at a time."
    some-llm-command | python scripts/ws_client.py --voice-id anna.wav --seed 7 --out reply.wav
    python scripts/ws_client.py --url ws://tts.example.com:8000/tts/stream --format wav
        --param cfg_guidance_weight=0.3 --param chunk_overlap_method=zero "Hello."  (one line)

Text comes from the arguments, or from stdin when there are none (or the argument is ``-``);
stdin is forwarded line by line as it arrives, so a pipe from a running program streams.
``--word-by-word`` splits the text into words (each with its leading whitespace, as an LLM emits
tokens) and sends one ``text`` message per word, ``--delay`` seconds apart.

The client sends ``start`` (voice, format, seed and every ``--param``), waits for ``started``,
streams ``text`` messages, then ``end``; meanwhile it writes the audio frames into ``--out`` (a WAV
file with correct sizes, whichever ``--format`` is requested, at the sample rate ``started``
announces). It prints the time to first audio measured here (from the first text sent to the first
audio frame received) and the server's ``done`` event. The API key is ``--api-key`` or the
``API_KEY`` environment variable, sent in the ``X-API-Key`` header.

Exit status: 0 after ``done``; 1 on an ``error`` event, a refused handshake or a lost connection;
2 for bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI

WAV_HEADER_BYTES = 44  # the server's streaming WAV header, sent as the first binary frame
WORD = re.compile(r"\s*\S+|\s+$")


class ServerError(Exception):
    """The server sent an ``error`` event (or refused the connection)."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__(event.get("message", "error"))
        self.event = event


@dataclass
class Timing:
    first_text_sent: float | None = None
    first_audio: float | None = None

    def first_audio_ms(self) -> float | None:
        if self.first_text_sent is None or self.first_audio is None:
            return None
        return round((self.first_audio - self.first_text_sent) * 1000, 1)


def parse_param(item: str) -> tuple[str, Any]:
    """``key=value``; the value is read as JSON (numbers, true, null) or else kept as a string."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def runpod_key_for(url: str) -> str | None:
    """$RUNPOD_API_KEY, but only for RunPod's own hosts: an account key must not leak elsewhere."""
    host = urlsplit(url).hostname or ""
    return os.environ.get("RUNPOD_API_KEY") if host.endswith(".runpod.ai") else None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python scripts/ws_client.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("text", nargs="*", help="text to speak; none or '-': read stdin")
    parser.add_argument("--url", default="ws://127.0.0.1:8000/tts/stream")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("API_KEY"),
        help="sent as X-API-Key (default: $API_KEY; the first key if it lists several)",
    )
    parser.add_argument("--out", type=Path, default=Path("ws_output.wav"), help="WAV file")
    parser.add_argument("--voice-id", help="a stored voice, e.g. anna.wav")
    parser.add_argument("--seed", type=int, help="makes the audio reproducible")
    parser.add_argument("--format", choices=("raw_pcm", "wav"), default="raw_pcm")
    parser.add_argument(
        "--param",
        type=parse_param,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any synthesis parameter, e.g. cfg_guidance_weight=0.3 (repeatable)",
    )
    parser.add_argument(
        "--word-by-word", action="store_true", help="send one text message per word"
    )
    parser.add_argument(
        "--runpod-key",
        help="RunPod API key, sent as Authorization: Bearer, for a RunPod load-balancing "
        "endpoint (default: $RUNPOD_API_KEY, sent only to *.runpod.ai URLs)",
    )
    parser.add_argument(
        "--delay", type=float, default=0.05, help="seconds between text messages (default 0.05)"
    )
    args = parser.parse_args(argv)
    if args.delay < 0:
        parser.error("--delay must not be negative")
    if (not args.text or args.text == ["-"]) and sys.stdin.isatty():
        parser.error("give the text as arguments or on stdin")
    return args


def start_message(args: argparse.Namespace) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "start", "format": args.format}
    if args.voice_id:
        message["voice_id"] = args.voice_id
    if args.seed is not None:
        message["seed"] = args.seed
    message.update(dict(args.param))
    return message


async def text_source(args: argparse.Namespace) -> AsyncIterator[str]:
    """The arguments as one text, or stdin line by line as it arrives."""
    if args.text and args.text != ["-"]:
        yield " ".join(args.text)
        return
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        yield line


async def text_pieces(args: argparse.Namespace) -> AsyncIterator[str]:
    async for text in text_source(args):
        if args.word_by_word:
            for word in WORD.findall(text):
                yield word
        elif text:
            yield text


async def send_text(ws: ClientConnection, args: argparse.Namespace, timing: Timing) -> None:
    first = True
    async for piece in text_pieces(args):
        if not first and args.delay:
            await asyncio.sleep(args.delay)
        await ws.send(json.dumps({"type": "text", "text": piece}))
        if timing.first_text_sent is None:
            timing.first_text_sent = time.perf_counter()
        first = False
    await ws.send(json.dumps({"type": "end"}))


def control_event(message: str, wanted: str) -> dict[str, Any] | None:
    """The JSON event if it is ``wanted``; None for other events; ServerError for ``error``."""
    event: dict[str, Any] = json.loads(message)
    if event.get("type") == "error":
        raise ServerError(event)
    return event if event.get("type") == wanted else None


async def wait_started(ws: ClientConnection) -> dict[str, Any]:
    async for message in ws:
        if isinstance(message, bytes):
            continue  # nothing binary comes before started
        if event := control_event(message, "started"):
            return event
    raise ConnectionError("the server closed the connection before 'started'")


async def receive_audio(
    ws: ClientConnection, wav: wave.Wave_write, audio_format: str, timing: Timing
) -> dict[str, Any]:
    """Write audio frames into ``wav`` until ``done`` (returned) or ``error`` (raised)."""
    header_left = WAV_HEADER_BYTES if audio_format == "wav" else 0
    async for message in ws:
        if isinstance(message, bytes):
            skip = min(header_left, len(message))
            header_left -= skip
            pcm = message[skip:]
            if pcm:
                if timing.first_audio is None:
                    timing.first_audio = time.perf_counter()
                wav.writeframes(pcm)
            continue
        if event := control_event(message, "done"):
            return event
    raise ConnectionError("the server closed the connection before 'done'")


async def run(args: argparse.Namespace) -> int:
    headers = {}
    if args.api_key:
        headers["X-API-Key"] = args.api_key.split(",")[0].strip()
    if runpod_key := args.runpod_key or runpod_key_for(args.url):
        headers["Authorization"] = f"Bearer {runpod_key}"
    timing = Timing()
    async with connect(args.url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps(start_message(args)))
        started = await wait_started(ws)
        print(
            f"started: request {started.get('request_id')}, {started['sample_rate']} Hz, "
            f"format {started.get('format')}",
            file=sys.stderr,
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(args.out), "wb") as wav:
            wav.setnchannels(int(started.get("channels", 1)))
            wav.setsampwidth(2)  # signed 16-bit little-endian
            wav.setframerate(int(started["sample_rate"]))
            sender = asyncio.create_task(send_text(ws, args, timing))
            receiver = asyncio.create_task(receive_audio(ws, wav, args.format, timing))
            try:
                await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if not receiver.done() and (failure := sender.exception()) is not None:
                    raise failure  # e.g. stdin could not be read: no end will be sent
                done = await receiver
            finally:
                for task in (sender, receiver):
                    task.cancel()
                await asyncio.gather(sender, receiver, return_exceptions=True)
            seconds = wav.getnframes() / wav.getframerate()
    ttfa = timing.first_audio_ms()
    print(f"time to first audio (client side): {'-' if ttfa is None else f'{ttfa} ms'}")
    print(f"done: {json.dumps(done)}")
    print(f"wrote {seconds:.2f} s of audio to {args.out}")
    return 0


def describe_refusal(error: InvalidStatus) -> str:
    response = error.response
    detail = response.body.decode(errors="replace").strip() if response.body else ""
    return f"handshake refused with HTTP {response.status_code}: {detail or response.reason_phrase}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args))
    except ServerError as error:
        print(f"error event: {json.dumps(error.event)}", file=sys.stderr)
    except InvalidStatus as error:
        print(describe_refusal(error), file=sys.stderr)
    except InvalidURI as error:
        print(f"invalid --url: {error}", file=sys.stderr)
        return 2
    except (OSError, ConnectionClosed, TimeoutError) as error:
        print(f"connection to {args.url} failed: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
