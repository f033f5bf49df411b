"""ElevenLabs' HTTP streaming through the real processes, driven by the unmodified
``elevenlabs`` SDK: ``text_to_speech.stream`` and ``stream_with_timestamps``."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from elevenlabs import ElevenLabs
from elevenlabs.core.api_error import ApiError

from tests.support.server import API_KEY, Server
from tests.support.voices import clip_bytes, upload

TEXT = "The keeper lit the lamp. Ships saw the beam."


@pytest.fixture
def client(server: Server, tmp_path: Path) -> ElevenLabs:
    upload(server, "eleven-http.wav", clip_bytes(tmp_path, seed=9))
    return ElevenLabs(base_url=server.url, api_key=API_KEY)


def test_the_sdk_streams_audio_and_audio_with_timestamps(client: ElevenLabs) -> None:
    audio = b"".join(client.text_to_speech.stream("eleven-http.wav", text=TEXT,
                                                  output_format="pcm_24000", seed=3))  # fmt: skip
    assert len(audio) > 2 * 960 and len(audio) % 2 == 0

    chunks = list(client.text_to_speech.stream_with_timestamps(
        "eleven-http.wav", text=TEXT, output_format="pcm_24000", seed=3))  # fmt: skip
    timed = b"".join(base64.b64decode(c.audio_base_64) for c in chunks)
    assert timed == audio  # the same seed, the same speech; timings change nothing
    chars, starts, ends = [], [], []
    for chunk in chunks:
        if chunk.alignment is not None:
            chars += chunk.alignment.characters
            starts += chunk.alignment.character_start_times_seconds
            ends += chunk.alignment.character_end_times_seconds
    assert "".join(chars).split() == TEXT.split()  # every character once, in order
    assert starts == sorted(starts) and all(s <= e for s, e in zip(starts, ends, strict=True))
    assert ends[-1] <= len(audio) / 2 / 24000 + 0.001  # seconds from the first sample


@pytest.mark.parametrize(
    ("voice", "query", "body", "status", "param"),
    [
        ("ghost.wav", "", {"text": TEXT}, 404, "voice_id"),
        ("eleven-http.wav", "?output_format=pcm_12345", {"text": TEXT}, 422, "output_format"),
        ("eleven-http.wav", "", {"text": "..."}, 422, "text"),
        ("eleven-http.wav", "", {"text": TEXT, "voice_settings": {"speed": 9}}, 422,
         "voice_settings"),
    ],
)  # fmt: skip
def test_refusals_are_elevenlabs_errors_naming_the_field(
    client: ElevenLabs, server: Server, voice: str, query: str, body: dict[str, object],
    status: int, param: str,
) -> None:  # fmt: skip
    url = f"{server.url}/v1/text-to-speech/{voice}/stream/with-timestamps{query}"
    response = httpx.post(url, json=body, headers={"xi-api-key": API_KEY}, timeout=60)
    assert response.status_code == status
    assert response.json()["detail"]["param"] == param
    if status == 404:  # the SDK sees it as ElevenLabs would send it
        with pytest.raises(ApiError) as raised:
            b"".join(client.text_to_speech.stream(voice, text=TEXT))
        assert raised.value.status_code == 404
    unauthorised = httpx.post(url, json=body, timeout=60)
    assert unauthorised.status_code == 401 and "API key" in unauthorised.json()["detail"]["message"]
