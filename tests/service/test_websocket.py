"""WS /tts/stream through the real processes: every message type, and text arriving in pieces."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from tests.support.server import API_KEY, SAMPLES_PER_TOKEN, Server, parse_wav, pcm

# Three sentences of 80-100 characters: chunked the same whether sent whole or word by word.
STORY = (
    "The lighthouse keeper climbed the stairs every evening to light the great lamp above. "
    "Ships far out at sea watched for the beam and steered safely around the rocks below. "
    "One stormy night the lamp went dark, and the keeper ran up with a lantern in his hand."
)


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


class Utterance:
    """What the server sent for one utterance."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.audio = bytearray()
        self.first_audio: float | None = None

    @property
    def kinds(self) -> list[str]:
        return [e["type"] for e in self.events]


async def collect(ws: websockets.ClientConnection, until: tuple[str, ...] = ("done", "error"),
                  into: Utterance | None = None) -> Utterance:  # fmt: skip
    result = into or Utterance()
    while True:
        message = await asyncio.wait_for(ws.recv(), timeout=120)
        if isinstance(message, bytes):
            result.first_audio = result.first_audio or time.perf_counter()
            result.audio.extend(message)
            continue
        event = json.loads(message)
        result.events.append(event)
        if event["type"] in until:
            return result


def connect(server: Server, **headers: str) -> Any:
    return websockets.connect(server.ws_url, additional_headers=headers or server.headers)


async def test_a_single_message_is_start_text_and_end(server: Server) -> None:
    async with connect(server) as ws:
        await ws.send(json.dumps({"text": "Short and sweet.", "seed": 4, "fixed_token_count": 20}))
        result = await collect(ws)
    assert result.kinds == ["started", "done"]
    started, done = result.events
    assert started["sample_rate"] == 24000 and started["format"] == "wav"
    assert started["request_id"] == done["request_id"]
    rate, samples = parse_wav(bytes(result.audio))
    assert rate == 24000
    assert len(samples) == 20 * SAMPLES_PER_TOKEN
    assert done["audio_seconds"] == pytest.approx(0.8)
    assert done["time_to_first_audio_ms"] > 0 and done["cancelled"] is False


async def test_text_sent_word_by_word_is_one_continuous_utterance(server: Server) -> None:
    params = {"seed": 11, "fixed_token_count": 60}
    whole = httpx.get(f"{server.url}/tts/generate", headers=server.headers, timeout=120,
                      params={"text": STORY, "format": "raw_pcm", **params})  # fmt: skip
    assert whole.status_code == 200
    async with connect(server) as ws:
        await ws.send(json.dumps({"type": "start", "format": "raw_pcm", **params}))
        result = await collect(ws, until=("started",))
        receiving = asyncio.create_task(collect(ws, into=result))
        for word in STORY.split(" "):  # as an LLM streams it
            await ws.send(json.dumps({"type": "text", "text": word + " "}))
            await asyncio.sleep(0.08)
        ended = time.perf_counter()
        await ws.send(json.dumps({"type": "end"}))
        await receiving
    assert result.kinds == ["started", "done"]
    assert result.first_audio is not None and result.first_audio < ended  # spoke early
    streamed, reference = pcm(bytes(result.audio)), pcm(whole.content)
    # Same sentences, same seed: the same tokens, so exactly as long as the one-shot request
    # (no gap, no repeat); only S3Gen's window boundaries differ, so the sound barely does.
    assert len(streamed) == len(reference) == 3 * 60 * SAMPLES_PER_TOKEN
    assert np.corrcoef(streamed.astype(float), reference.astype(float))[0, 1] > 0.95


async def test_flush_speaks_an_unfinished_sentence_before_the_end(server: Server) -> None:
    async with connect(server) as ws:
        await ws.send(json.dumps({"type": "start", "format": "raw_pcm", "fixed_token_count": 20}))
        await ws.send(json.dumps({"type": "text", "text": "No full stop yet"}))
        await ws.send(json.dumps({"type": "flush"}))
        first = await asyncio.wait_for(ws.recv(), 60)
        assert json.loads(first)["type"] == "started"
        audio = await asyncio.wait_for(ws.recv(), 60)  # without end: the flush made it speak
        assert isinstance(audio, bytes)
        await ws.send(json.dumps({"type": "text", "text": "and then more."}))
        await ws.send(json.dumps({"type": "end"}))
        result = await collect(ws)
    total = len(audio) + len(result.audio)
    assert result.kinds == ["done"]
    assert total == 2 * 20 * SAMPLES_PER_TOKEN * 2  # two chunks of 20 tokens, 2 bytes a sample


async def test_timings_asked_for_come_per_chunk_before_the_audio_past_their_end(
    server: Server,
) -> None:
    """Without ``timings`` none come (the single-message test above sees only started, done)."""
    arrivals: list[tuple[dict[str, Any], int]] = []  # each Timings, with the audio bytes before it
    audio = 0
    async with connect(server) as ws:
        start = {"type": "start", "format": "raw_pcm", "timings": True, "fixed_token_count": 15}
        await ws.send(json.dumps(start))
        for word in STORY.split(" "):
            await ws.send(json.dumps({"type": "text", "text": word + " "}))
        await ws.send(json.dumps({"type": "end"}))
        while True:
            message = await asyncio.wait_for(ws.recv(), timeout=120)
            if isinstance(message, bytes):
                audio += len(message)
            elif (event := json.loads(message))["type"] == "timings":
                arrivals.append((event, audio))
            elif event["type"] in ("done", "error"):
                break
    assert event["type"] == "done"
    audio_ms = audio / 2 / 24000 * 1000
    assert " ".join(t["text"] for t, _ in arrivals) == STORY
    assert [t["chunk"] for t, _ in arrivals] == list(range(len(arrivals))) and len(arrivals) == 3
    words = [w for t, _ in arrivals for w in t["words"]]
    assert [w["word"] for w in words] == STORY.split()
    times = [time for w in words for time in (w["start_ms"], w["end_ms"])]
    assert times == sorted(times) and times[-1] <= audio_ms + 1
    for timings, before in arrivals:  # the audio received so far does not reach past its end
        assert before / 2 / 24000 * 1000 <= timings["end_ms"] + 1, timings["chunk"]


async def test_cancel_stops_the_utterance_and_the_connection_carries_on(server: Server) -> None:
    async with connect(server) as ws:
        await ws.send(json.dumps({"text": "This would go on and on.", "fixed_token_count": 2000}))
        assert json.loads(await ws.recv())["type"] == "started"
        assert isinstance(await ws.recv(), bytes)
        cancelled_at = time.monotonic()
        await ws.send(json.dumps({"type": "cancel"}))
        result = await collect(ws)
        assert result.events[-1]["cancelled"] is True
        while server.status()["service"]["active_requests"]:
            await asyncio.sleep(0.005)
        # The worker answers a cancel at once, whatever batch its request was in.
        assert time.monotonic() - cancelled_at < 0.2, "the cancelled request held its slot"
        await ws.send(json.dumps({"text": "Next one.", "fixed_token_count": 5}))
        assert (await collect(ws)).kinds == ["started", "done"]


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ("not json", "invalid_message", None),
        (json.dumps([1, 2]), "invalid_message", None),
        (json.dumps({"type": "sing"}), "invalid_message", "type"),
        (json.dumps({"type": "text", "text": "orphan"}), "invalid_message", None),
        (json.dumps({"type": "end"}), "invalid_message", None),
        (json.dumps({"type": "start", "synthesis_temperature": -1}), "invalid_request",
         "synthesis_temperature"),
        (json.dumps({"type": "start", "voice_id": "ghost.wav"}), "voice_not_found", "voice_id"),
        (json.dumps({"type": "start", "language": "de"}), "invalid_request", "language"),
        (json.dumps({"type": "start", "timings": "yes"}), "invalid_request", "timings"),
    ],
)  # fmt: skip
async def test_bad_messages_get_an_error_event_and_the_socket_stays_usable(
    server: Server, message: str, code: str, field: str | None
) -> None:
    async with connect(server) as ws:
        await ws.send(message)
        error = json.loads(await asyncio.wait_for(ws.recv(), 60))
        assert error["type"] == "error" and error["code"] == code
        assert error.get("field") == field
        assert "Traceback" not in error["message"]
        await ws.send(json.dumps({"text": "Still here.", "fixed_token_count": 5}))
        assert (await collect(ws)).kinds == ["started", "done"]


async def test_a_second_start_during_an_utterance_is_refused(server: Server) -> None:
    async with connect(server) as ws:
        await ws.send(json.dumps({"type": "start", "format": "raw_pcm"}))
        assert json.loads(await ws.recv())["type"] == "started"
        await ws.send(json.dumps({"type": "start"}))
        assert json.loads(await ws.recv())["code"] == "invalid_message"


@pytest.mark.parametrize(("headers", "status"), [({}, 401), ({"X-API-Key": "nope"}, 403)])
async def test_the_handshake_needs_a_valid_key(
    server: Server, headers: dict[str, str], status: int
) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(server.ws_url, additional_headers=headers):
            pass
    assert refused.value.response.status_code == status


async def test_the_key_may_come_in_the_query_string(server: Server) -> None:
    async with websockets.connect(f"{server.ws_url}?api_key={API_KEY}") as ws:
        await ws.send(json.dumps({"text": "Browser style.", "fixed_token_count": 5}))
        assert (await collect(ws)).kinds == ["started", "done"]
