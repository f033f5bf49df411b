"""Speech to speech over HTTP, on the real service (tiny English checkpoint): ours
(``/vc/convert``) and ElevenLabs' (``/v1/speech-to-speech``, ``/v1/voice-changer``), streamed,
and every refusal of the recording a 4xx naming ``audio``, as for voice uploads."""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.support.server import API_KEY, Server, parse_wav
from tests.support.voices import upload
from worker.engine.model.random_checkpoint import reference_clip

SECONDS = 3.0
TOKENS = math.ceil(SECONDS * 25)


def wav16(seconds: float = SECONDS, seed: int = 4, scale: float = 1.0) -> bytes:
    pcm = (reference_clip(seconds, 16000, seed=seed) * scale * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


def ours(server: Server, data: bytes | None, **form: str) -> httpx.Response:
    # No data: a form without the audio field.
    files = {"note": ("n.txt", b"x")} if data is None else {"audio": ("source.wav", data)}
    return httpx.post(f"{server.url}/vc/convert", headers=server.headers, files=files,
                      data=form, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def target(server: Server) -> Iterator[str]:
    """A library voice to convert into (removed afterwards: the server is the session's)."""
    from tests.support.voices import clip_bytes

    response = upload(server, "vc-target.wav", clip_bytes(server.workdir, seed=6))
    assert response.status_code == 201, response.text
    yield response.json()["voice_id"]
    httpx.delete(f"{server.url}/voices/vc-target.wav", headers=server.headers)


def test_converts_a_recording_streamed_as_wav(server: Server) -> None:
    response = ours(server, wav16(), seed="3")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("audio/wav")
    rate, pcm = parse_wav(response.content)
    assert rate == 24000 and len(pcm) == TOKENS * 960
    assert np.abs(pcm).max() > 0
    again = ours(server, wav16(), seed="3")  # a seed reproduces it
    assert parse_wav(again.content)[1].tolist() == pcm.tolist()


def test_converts_into_a_library_voice_in_another_format(server: Server, target: str) -> None:
    response = ours(server, wav16(), voice_id=target, output_format="raw_pcm", sample_rate="16000")
    assert response.status_code == 200, response.text
    assert len(response.content) == TOKENS * 960 * 2 * 16000 // 24000


@pytest.mark.parametrize(
    ("data", "form", "status", "field"),
    [
        (None, {}, 422, "audio"),
        (b"", {}, 415, "audio"),
        (b"not audio at all" * 100, {}, 415, "audio"),
        (wav16(scale=0.0), {}, 422, "audio"),  # silent
        (wav16(seconds=0.6), {}, 422, "audio"),  # too little sound
        (wav16(seconds=31.0), {}, 422, "audio"),  # MAX_VOICE_SECONDS=30
        (wav16(), {"output_format": "wma"}, 422, "output_format"),
        (wav16(), {"voice_id": "nobody.wav"}, 404, "voice_id"),
        (wav16(), {"seed": "minus one"}, 422, "seed"),
    ],
)
def test_refusals_name_the_field(
    server: Server, data: bytes | None, form: dict[str, str], status: int, field: str
) -> None:
    response = ours(server, data, **form)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_too_large_and_not_a_form(server: Server) -> None:
    response = ours(server, b"\0" * 2_100_000)  # MAX_VOICE_UPLOAD_BYTES=2,000,000
    assert response.status_code == 413
    response = httpx.post(f"{server.url}/vc/convert", headers=server.headers, json={"a": 1})
    assert response.status_code == 415
    assert httpx.post(f"{server.url}/vc/convert", files={"audio": wav16()}).status_code == 401


@pytest.mark.parametrize("path", ["speech-to-speech", "voice-changer"])
def test_elevenlabs_raw_pcm_in_and_out(server: Server, target: str, path: str) -> None:
    raw = reference_clip(SECONDS, 16000, seed=4)
    response = httpx.post(
        f"{server.url}/v1/{path}/{target}/stream", params={"output_format": "pcm_24000"},
        headers={"xi-api-key": API_KEY}, timeout=120,
        files={"audio": ("a.pcm", (raw * 32767).astype("<i2").tobytes())},
        data={"file_format": "pcm_s16le_16", "model_id": "eleven_multilingual_sts_v2",
              "seed": "5", "remove_background_noise": "false"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert len(response.content) == TOKENS * 960 * 2


def test_elevenlabs_refusals_in_their_shape(server: Server, target: str) -> None:
    url = f"{server.url}/v1/speech-to-speech/{target}"
    key = {"xi-api-key": API_KEY}
    bad = httpx.post(url, headers=key, params={"output_format": "mp3_1_1"},
                     files={"audio": ("a.wav", wav16())})  # fmt: skip
    assert bad.status_code == 422 and bad.json()["detail"]["param"] == "output_format"
    silent = httpx.post(url, headers=key, files={"audio": ("a.wav", wav16(scale=0.0))})
    assert silent.status_code == 422 and silent.json()["detail"]["param"] == "audio"
    assert httpx.post(url, files={"audio": ("a.wav", wav16())}).status_code == 401


def test_status_and_models_say_conversion_is_available(server: Server) -> None:
    status = httpx.get(f"{server.url}/system-status", headers=server.headers).json()
    assert status["model"]["voice_conversion"] is True
    models = httpx.get(f"{server.url}/v1/models", headers=server.headers).json()["data"]
    assert models[0]["voice_conversion"] is True
