"""The soak's WebSocket exchanges. ``/tts/stream``: text word by word as an LLM writes it, then
``end`` (the whole reply), ``cancel`` at the first audio (a barge-in) or the TCP connection
aborted there (a client that vanishes); sometimes a second utterance on the same socket.
ElevenLabs' ``multi-stream-input``: a barge-in closes the speaking context at its first audio while
the next reply starts in a new one, which then ends as a turn does (flush, close_context);
``stream-input``: one context to its ``isFinal``."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from scripts.bench_service import KEY
from scripts.soak_common import Client, Result, error_result, headers, status_result
from scripts.soak_contexts import Contexts, Stopped
from scripts.soak_http import ELEVEN_FORMATS, tokens

WS_FORMATS = ("raw_pcm", "wav", "mulaw", "mp3", "ogg", "webm")
WORD_GAP_S = 0.03
MODES = ("complete", "barge", "drop")


def words(text: str) -> list[str]:
    """Each word with its trailing space, as an LLM's tokens arrive."""
    return [f"{word} " for word in text.split()]


async def handshake(url: str, extra: dict[str, str]) -> ClientConnection | Result:
    """Open a socket; a refused handshake is the outcome its status stands for."""
    try:
        return await connect(url, additional_headers=extra, open_timeout=30, max_size=None)
    except InvalidStatus as refused:
        return status_result(refused.response.status_code, bytes(refused.response.body or b""))


async def tts_stream(client: Client) -> Result:
    mode = client.rng.choices(MODES, (6, 3, 1.5))[0]
    client.step = "WS /tts/stream: handshake"
    ws = await handshake(f"{client.ws_url}/tts/stream", headers())
    if isinstance(ws, Result):
        return ws
    async with ws:
        result = await utterance(client, ws, mode)
        if result.outcome == "ok" and mode != "drop" and client.rng.random() < 0.3:
            result = await utterance(client, ws, "complete")
        return result


async def send_words(ws: ClientConnection, text: str, end: bool) -> None:
    for word in words(text):
        await ws.send(json.dumps({"type": "text", "text": word}))
        await asyncio.sleep(WORD_GAP_S)
    if end:
        await ws.send(json.dumps({"type": "end"}))


async def utterance(client: Client, ws: ClientConnection, mode: str) -> Result:
    start: dict[str, Any] = {
        "type": "start",
        "format": client.rng.choice(WS_FORMATS),
        "fixed_token_count": tokens(client),
        "seed": client.seed(),
        "timings": client.rng.random() < 0.3,
    }
    if voice := client.voice():
        start["voice_id"] = voice
    client.step = f"WS /tts/stream ({mode}): waiting for started"
    await ws.send(json.dumps(start))
    event = json.loads(await ws.recv())
    if event.get("type") != "started":
        return event_result(event)
    sender = asyncio.create_task(send_words(ws, client.text(), end=mode == "complete"))
    try:
        return await listen(client, ws, mode, sender)
    finally:
        sender.cancel()


async def listen(
    client: Client, ws: ClientConnection, mode: str, sender: asyncio.Task[None]
) -> Result:
    """Audio until ``done``; or, at the first audio, a cancel (timed to its ``done``) or a drop."""
    client.step = f"WS /tts/stream ({mode}): waiting for audio"
    audio, cancelled_at = 0, None
    while True:
        message = await ws.recv()
        if isinstance(message, bytes):
            audio += len(message)
            if mode == "drop":
                ws.transport.abort()
                return Result("dropped")
            if mode == "barge" and cancelled_at is None:
                sender.cancel()
                await ws.send(json.dumps({"type": "cancel"}))
                cancelled_at = time.perf_counter()
                client.step = "WS /tts/stream (barge): waiting for done after cancel"
            continue
        event = json.loads(message)
        if event.get("type") == "done":
            return done_result(event, audio, cancelled_at)
        if event.get("type") == "error":
            return event_result(event)


def done_result(event: dict[str, Any], audio: int, cancelled_at: float | None) -> Result:
    if cancelled_at is not None:
        if not event.get("cancelled"):
            return Result("error", f"done without cancelled after a cancel: {event}")
        return Result("ok", barge_in_ms=(time.perf_counter() - cancelled_at) * 1000)
    if event.get("cancelled") or not audio:
        return Result("error", f"done with {audio} bytes of audio: {event}")
    return Result("ok")


def event_result(event: dict[str, Any]) -> Result:
    if event.get("type") == "error":
        return error_result(str(event.get("code")), str(event.get("message")))
    return Result("error", f"unexpected event {str(event)[:200]}")


def elevenlabs_url(client: Client, socket: str) -> str:
    voice = quote(client.named_voice())
    fmt = client.rng.choice(ELEVEN_FORMATS)
    return f"{client.ws_url}/v1/text-to-speech/{voice}/{socket}?output_format={fmt}"


async def elevenlabs_multi(client: Client) -> Result:
    mode = client.rng.choices(MODES, (4, 4, 1.5))[0]
    client.step = "WS multi-stream-input: handshake"
    url = elevenlabs_url(client, "multi-stream-input") + "&auto_mode=true"
    ws = await handshake(url, {"xi-api-key": KEY})
    if isinstance(ws, Result):
        return ws
    async with ws:
        contexts = Contexts(ws)
        try:
            return await multi_turns(client, ws, contexts, mode)
        except Stopped as stopped:
            return stopped.result
        finally:
            contexts.close()


async def multi_turns(
    client: Client, ws: ClientConnection, contexts: Contexts, mode: str
) -> Result:
    barge_in_ms = None
    if mode != "complete":
        await send_context(ws, "a", client.text())
        client.step = f"WS multi-stream-input ({mode}): waiting for audio"
        await contexts.until(contexts.first_audio["a"])
        if mode == "drop":
            ws.transport.abort()
            return Result("dropped")
        await ws.send(json.dumps({"context_id": "a", "close_context": True}))
        closed = time.perf_counter()
        await send_context(ws, "b", client.text())  # the next reply, as the old one stops
        client.step = "WS multi-stream-input (barge): waiting for isFinal after close_context"
        await contexts.until(contexts.final["a"])
        barge_in_ms = (contexts.final_at["a"] - closed) * 1000
    else:
        await send_context(ws, "b", client.text())
    await ws.send(json.dumps({"context_id": "b", "flush": True}))
    await end_turn(client, ws, contexts)
    if not contexts.audio["b"]:
        return Result("error", "a turn's context ended without audio")
    return Result("ok", barge_in_ms=barge_in_ms)


async def end_turn(client: Client, ws: ClientConnection, contexts: Contexts) -> None:
    """After the turn's flush: ``close_context`` (the client closes the socket itself), or
    ``close_socket``, which finishes the context and has the server close the socket. Not
    ``close_socket`` once no context is open: the server then drops the connection without a
    close frame (1006)."""
    closing_socket = client.rng.random() < 0.5
    ending = (
        {"close_socket": True} if closing_socket else {"context_id": "b", "close_context": True}
    )
    await ws.send(json.dumps(ending))
    client.step = (
        f"WS multi-stream-input: waiting for the turn's isFinal after {next(iter(ending))}"
    )
    await contexts.until(contexts.final["b"])
    if closing_socket:
        client.step = "WS multi-stream-input: waiting for the close after close_socket"
        await contexts.until_closed()


async def send_context(ws: ClientConnection, context: str, text: str) -> None:
    await ws.send(json.dumps({"text": " ", "context_id": context}))
    for word in words(text):
        await ws.send(json.dumps({"text": word, "context_id": context}))
        await asyncio.sleep(WORD_GAP_S)


async def elevenlabs_single(client: Client) -> Result:
    """``stream-input``: text word by word, ``{"text": ""}`` to end, audio to ``isFinal``."""
    client.step = "WS stream-input: handshake"
    ws = await handshake(elevenlabs_url(client, "stream-input"), {"xi-api-key": KEY})
    if isinstance(ws, Result):
        return ws
    async with ws:
        contexts = Contexts(ws)
        try:
            await ws.send(json.dumps({"text": " ", "voice_settings": {"speed": 1.0}}))
            for word in words(client.text(most=1)):
                await ws.send(json.dumps({"text": word}))
                await asyncio.sleep(WORD_GAP_S)
            await ws.send(json.dumps({"text": ""}))
            client.step = "WS stream-input: waiting for isFinal"
            await contexts.until(contexts.final[""])
        except Stopped as stopped:
            return stopped.result
        finally:
            contexts.close()
    return Result("ok") if contexts.audio[""] else Result("error", "isFinal without audio")
