"""An error a context causes on ElevenLabs' sockets ends that context, as the clients read it
(raw websockets against the real processes; the unmodified clients are in tests/clients)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import websockets

from tests.support.server import API_KEY, Server
from tests.support.voices import clip_bytes, upload

VOICE = "eleven-errors.wav"
TOO_LONG = "a " * 50_001  # WS_MAX_TEXT_CHARS is 100,000


def _url(server: Server, socket: str) -> str:
    return (
        f"ws://127.0.0.1:{server.port}/v1/text-to-speech/{VOICE}/{socket}?output_format=pcm_24000"
    )


async def _next(ws: Any, wanted: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
        if wanted in message:
            return message


async def _idle(server: Server) -> float:
    """Seconds until no request holds a slot."""
    started = time.perf_counter()
    while server.status()["service"]["active_requests"]:
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


@pytest.fixture(scope="module", autouse=True)
def voice(server: Server, tmp_path_factory: pytest.TempPathFactory) -> None:
    upload(server, VOICE, clip_bytes(tmp_path_factory.mktemp("voice"), seed=10))


def test_an_error_names_its_context_ends_it_and_frees_its_slot(server: Server) -> None:
    async def run() -> None:
        headers = {"xi-api-key": API_KEY}
        async with websockets.connect(_url(server, "multi-stream-input"),
                                      additional_headers=headers) as ws:  # fmt: skip
            await ws.send(json.dumps({"text": " ", "context_id": "a"}))
            await ws.send(json.dumps({"text": "Hello. ", "context_id": "b", "flush": True}))
            await _next(ws, "audio")  # both are open (messages are handled in order)
            await ws.send(json.dumps({"text": TOO_LONG, "context_id": "a"}))
            error = await _next(ws, "error")
            assert error["contextId"] == error["context_id"] == "a", error
            assert error["isFinal"] is True and "100000 characters" in error["message"], error
            await ws.send(json.dumps({"context_id": "b", "close_context": True}))  # a barge-in
            assert (await _next(ws, "isFinal")) == {"isFinal": True, "contextId": "b"}
            assert await _idle(server) < 1.0, "the failed context kept its slot"
            # what the client sends next for the context it was told is over opens a new one
            await ws.send(json.dumps({"text": "Hi. ", "context_id": "a", "flush": True}))
            assert (await _next(ws, "audio"))["contextId"] == "a"

    asyncio.run(run())


def test_stream_input_ends_with_its_refusal_which_the_sdk_raises(server: Server) -> None:
    """The socket is the context: the refusal is its last message, then it closes (the
    ElevenLabs SDK raises the last message it read once the socket closes)."""

    async def run() -> None:
        headers = {"xi-api-key": API_KEY}
        async with websockets.connect(
            _url(server, "stream-input"), additional_headers=headers
        ) as ws:
            await ws.send(json.dumps({"text": " "}))
            await ws.send(json.dumps({"text": TOO_LONG}))
            error = await _next(ws, "error")
            assert "100000 characters" in error["message"] and "contextId" not in error, error
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        assert await _idle(server) < 1.0

    asyncio.run(run())
