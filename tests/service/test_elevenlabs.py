"""ElevenLabs' multi-stream-input WebSocket through the real processes (raw websockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from tests.support.server import Server
from tests.support.voices import clip_bytes, upload

TEXT = "The keeper climbed the stairs every evening to light the lamp. "


def _url(server: Server, voice: str, query: str = "output_format=pcm_24000") -> str:
    base = server.ws_url.rsplit("/tts/stream", 1)[0]
    return f"{base}/v1/text-to-speech/{voice}/multi-stream-input?{query}"


async def _until_final(ws: Any, context: str) -> list[dict[str, Any]]:
    messages = []
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
        if message.get("contextId") != context:
            continue
        messages.append(message)
        if message.get("isFinal") or "error" in message:
            return messages


def test_a_context_speaks_with_alignment_then_a_barge_in_stops(
    server: Server, tmp_path: Path
) -> None:
    upload(server, "eleven.wav", clip_bytes(tmp_path, seed=7))

    async def run() -> None:
        headers = {"xi-api-key": server.headers.get("X-API-Key", "")}
        async with websockets.connect(_url(server, "eleven.wav"), additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "a"}))
            await ws.send(json.dumps({"text": "", "context_id": "a"}))  # keep-alive
            await ws.send(json.dumps({"text": TEXT, "context_id": "a"}))
            await ws.send(json.dumps({"context_id": "a", "flush": True}))
            await ws.send(json.dumps({"context_id": "a", "close_context": True}))
            messages = await _until_final(ws, "a")
            assert messages[-1] == {"isFinal": True, "contextId": "a"}
            audio = b"".join(base64.b64decode(m["audio"]) for m in messages[:-1])
            assert len(audio) > 0
            chars = [
                c for m in messages[:-1] if m.get("alignment") for c in m["alignment"]["chars"]
            ]
            assert "".join(chars).strip() == TEXT.strip()
            # relative times: Pipecat's running offset gives monotonic times within the audio
            clock, starts = 0.0, []
            for m in messages[:-1]:
                if m.get("alignment"):
                    a = m["alignment"]
                    starts += [clock + s for s in a["charStartTimesMs"]]
                    clock += a["charStartTimesMs"][-1] + a["charDurationsMs"][-1]
            assert starts == sorted(starts) and clock <= len(audio) / 2 / 24 + 1

            await ws.send(json.dumps({"text": " ", "context_id": "b"}))
            await ws.send(json.dumps({"text": TEXT * 3, "context_id": "b"}))
            first = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
            assert first["contextId"] == "b" and first["audio"]
            closed = time.perf_counter()
            await ws.send(json.dumps({"context_id": "b", "close_context": True}))
            rest = await _until_final(ws, "b")
            assert rest[-1].get("isFinal") and time.perf_counter() - closed < 0.2

            await ws.send(json.dumps({"context_id": "zz", "flush": True}))
            error = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            assert error["error"] == "invalid_message"

    asyncio.run(run())


def test_limits_and_refusals_are_errors_and_a_dropped_socket_frees_its_slots(
    server: Server, tmp_path: Path
) -> None:
    upload(server, "eleven-limits.wav", clip_bytes(tmp_path, seed=8))
    key = {"xi-api-key": server.headers.get("X-API-Key", "")}

    async def refused(url: str, headers: dict[str, str]) -> dict[str, Any]:
        async with websockets.connect(url, additional_headers=headers) as ws:
            error: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
            return error

    async def run() -> None:
        voice = "eleven-limits.wav"
        bad_format = await refused(_url(server, voice, "output_format=pcm_12345"), key)
        assert "output_format" in bad_format["message"]
        assert "API key" in (await refused(_url(server, voice), {}))["message"]
        assert "ghost.wav" in (await refused(_url(server, "ghost.wav"), key))["message"]
        async with websockets.connect(_url(server, voice), additional_headers=key) as ws:
            for context in "abcdef":  # ELEVENLABS_MAX_CONTEXTS is 5
                await ws.send(json.dumps({"text": " ", "context_id": context}))
            error = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            assert error["error"] == "invalid_message" and "at most 5 contexts" in error["message"]
            assert server.status()["service"]["active_requests"] == 5
        dropped = time.perf_counter()
        while server.status()["service"]["active_requests"]:
            await asyncio.sleep(0.01)
        assert time.perf_counter() - dropped < 1.0, "a dropped socket kept its contexts' slots"

    asyncio.run(run())


async def _next_audio(ws: Any, context: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=120))
        if message.get("contextId") == context:
            assert message.get("audio"), message
            return message


def test_auto_mode_speaks_a_sentence_at_once_and_a_close_after_text_stops(
    server: Server, tmp_path: Path
) -> None:
    """The frameworks' turn: sentences (auto_mode: no trailing space needed), an empty flush
    and a close finish it; a close after text, or a second close, is a barge-in."""
    upload(server, "eleven-auto.wav", clip_bytes(tmp_path, seed=9))
    url = _url(server, "eleven-auto.wav", "output_format=pcm_24000&auto_mode=true")

    async def barge_in(ws: Any, context: str) -> None:
        await _next_audio(ws, context)  # still speaking
        closed = time.perf_counter()
        await ws.send(json.dumps({"context_id": context, "close_context": True}))
        assert (await _until_final(ws, context))[-1].get("isFinal")
        assert time.perf_counter() - closed < 0.2

    async def run() -> None:
        headers = {"xi-api-key": server.headers.get("X-API-Key", "")}
        async with websockets.connect(url, additional_headers=headers) as ws:
            await ws.send(json.dumps({"text": " ", "context_id": "a"}))
            await ws.send(json.dumps({"text": "The keeper climbed.", "context_id": "a"}))
            await _next_audio(ws, "a")  # no flush, no next text: the sentence was complete
            await ws.send(json.dumps({"text": TEXT * 3, "context_id": "a"}))
            await ws.send(json.dumps({"context_id": "a", "flush": True}))
            await ws.send(json.dumps({"context_id": "a", "close_context": True}))
            await _next_audio(ws, "a")  # the turn's end: its audio goes on
            await barge_in(ws, "a")  # Pipecat closes it again on an interruption

            # LiveKit flushes every sentence: a close after one is a barge-in
            await ws.send(json.dumps({"text": TEXT * 3, "context_id": "b", "flush": True}))
            await barge_in(ws, "b")

    asyncio.run(run())


def test_close_socket_with_no_context_open_closes_it_cleanly(
    server: Server, tmp_path: Path
) -> None:
    """It closed with no close frame (1006) when no context was open: it closes with 1000."""
    upload(server, "eleven-close.wav", clip_bytes(tmp_path, seed=9))
    key = {"xi-api-key": server.headers.get("X-API-Key", "")}

    async def run() -> None:
        async with websockets.connect(
            _url(server, "eleven-close.wav"), additional_headers=key
        ) as ws:
            await ws.send(json.dumps({"close_socket": True}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000

    asyncio.run(run())
