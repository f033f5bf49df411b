"""The soak's HTTP exchanges: ``/tts/generate`` (read whole, or streamed and sometimes dropped
after the first audio), OpenAI's ``/v1/audio/speech`` (audio or server-sent events), ElevenLabs'
``/stream`` and ``/stream/with-timestamps``, and the voice library's upload and delete."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

from scripts.soak_common import Client, Result, status_result, voice_clip

FORMATS = ("wav", "raw_pcm", "mulaw", "mp3", "ogg", "flac", "webm", "fmp4")
OPENAI_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
ELEVEN_FORMATS = ("pcm_24000", "pcm_16000", "ulaw_8000", "mp3_44100_128", "mp3_22050_32")
DROP_CHANCE = 0.2


def tokens(client: Client) -> int:
    """Speech tokens per text chunk (25 a second): short, so two cores keep up."""
    return client.rng.randint(20, 45)


async def stream_body(client: Client, method: str, url: str, **kwargs: Any) -> Result:
    """Read a streamed response to its end, or (one time in five) drop it at its first bytes."""
    drop = client.rng.random() < DROP_CHANCE
    route = f"{method} {httpx.URL(url).path}"
    client.step = f"{route}: waiting for the status"
    async with client.http.stream(method, url, **kwargs) as response:
        if response.status_code >= 400:
            return status_result(response.status_code, await response.aread())
        client.step = f"{route}: reading the body"
        size, tail = 0, b""
        async for chunk in response.aiter_raw():
            size += len(chunk)
            tail = (tail + chunk)[-4096:]
            if drop and size:
                return Result("dropped")
    if not size:
        return Result("error", "an empty body")
    if "event-stream" in response.headers.get("content-type", ""):
        return sse_result(tail)
    return Result("ok")


def sse_result(tail: bytes) -> Result:
    """Server-sent events end with ``speech.audio.done``, or an ``error`` event."""
    events = [
        line[5:] for line in tail.decode(errors="replace").splitlines() if line[:5] == "data:"
    ]
    last = json.loads(events[-1]) if events else {}
    if last.get("type") == "speech.audio.done":
        return Result("ok")
    return Result("error", f"server-sent events ended with {str(last)[:200]}")


def generate_fields(client: Client) -> dict[str, Any]:
    """A /tts/generate request's fields (the JSON body of a POST, the query of a GET)."""
    fields: dict[str, Any] = {
        "text": client.text(),
        "format": client.rng.choice(FORMATS),
        "fixed_token_count": tokens(client),
        "seed": client.seed(),
    }
    if voice := client.voice():
        fields["voice_id"] = voice
    return fields


async def generate_post(client: Client) -> Result:
    body = generate_fields(client)
    client.step = "POST /tts/generate"
    response = await client.http.post(f"{client.url}/tts/generate", json=body)
    result = status_result(response.status_code, response.content)
    if result.outcome == "ok" and not response.content:
        return Result("error", "an empty body")
    return result


async def generate_stream(client: Client) -> Result:
    params = generate_fields(client)
    return await stream_body(client, "GET", f"{client.url}/tts/generate", params=params)


async def openai_speech(client: Client) -> Result:
    rng = client.rng
    body = {
        "model": "tts-1",
        "input": client.text(),
        "voice": client.voice() or "alloy",
        "response_format": rng.choice(OPENAI_FORMATS),
        "speed": rng.choice((1.0, 1.0, 0.8, 1.25)),
        "stream_format": "sse" if rng.random() < 0.25 else "audio",
        "fixed_token_count": tokens(client),
        "seed": client.seed(),
    }
    return await stream_body(client, "POST", f"{client.url}/v1/audio/speech", json=body)


async def elevenlabs_stream(client: Client) -> Result:
    """ElevenLabs takes no token count: one short sentence, spoken to its text's budget."""
    route = client.rng.choice(("stream", "stream/with-timestamps"))
    url = f"{client.url}/v1/text-to-speech/{quote(client.named_voice())}/{route}"
    body = {
        "text": client.text(most=1),
        "seed": client.seed(),
        "model_id": "eleven_flash_v2_5",
        "voice_settings": {"speed": client.rng.choice((1.0, 1.1))},
    }
    params = {"output_format": client.rng.choice(ELEVEN_FORMATS)}
    return await stream_body(client, "POST", url, params=params, json=body)


async def upload_voice(client: Client, voice_id: str, seed: int) -> Result:
    client.step = "POST /voices"
    files = {"file": (voice_id, voice_clip(seed), "audio/wav")}
    response = await client.http.post(f"{client.url}/voices", files=files)
    return status_result(response.status_code, response.content)


async def delete_voice(client: Client, voice_id: str) -> Result:
    client.step = "DELETE /voices"
    response = await client.http.delete(f"{client.url}/voices/{quote(voice_id)}")
    return status_result(response.status_code, response.content)
