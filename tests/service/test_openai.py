"""OpenAI's speech API through the real `openai` SDK against the real service."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest

from tests.support.server import API_KEY, SAMPLES_PER_TOKEN, Server
from tests.support.voices import clip_bytes, upload

TOKENS = 50
SECONDS = TOKENS * SAMPLES_PER_TOKEN / 24000


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


@pytest.fixture
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0)


def speak(client: openai.OpenAI, path: Path, response_format: str = "mp3", **extra: object) -> Path:
    speed = float(extra.pop("speed", 1.0))  # type: ignore[arg-type]
    voice = str(extra.pop("voice", "alloy"))
    with client.audio.speech.with_streaming_response.create(
        model="tts-1", voice=voice, input="Hello from the OpenAI SDK.", speed=speed,
        response_format=response_format,  # type: ignore[arg-type]
        extra_body={"seed": 5, "fixed_token_count": TOKENS, **extra},
    ) as response:  # fmt: skip
        response.stream_to_file(path)
    return path


def decode(data: bytes, response_format: str) -> tuple[np.ndarray, int]:
    if response_format == "pcm":  # OpenAI's pcm: 24 kHz 16-bit little-endian mono
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768, 24000
    container = av.open(io.BytesIO(data))
    frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(audio=0)]
    return np.concatenate(frames), container.streams.audio[0].rate


@pytest.mark.parametrize("response_format", ["mp3", "opus", "aac", "flac", "wav", "pcm"])
def test_every_response_format_streams_to_a_file(
    client: openai.OpenAI, tmp_path: Path, response_format: str
) -> None:
    path = speak(client, tmp_path / f"out.{response_format}", response_format)
    audio, rate = decode(path.read_bytes(), response_format)
    # One codec frame of padding, plus the encoder delay that decoders can only trim with a
    # header written after the fact: AAC's 1024 samples of priming in ADTS, LAME's 1105.
    frames = {"aac": 2048, "mp3": 1152 + 1105}.get(response_format, 1152)
    assert abs(len(audio) / rate - SECONDS) <= frames / 24000 + 1e-6
    assert np.abs(audio).max() > 0.01


def centroid(audio: np.ndarray, rate: int) -> float:
    """Spectral centroid in Hz: a resampling speed-up would scale it with the speed."""
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / rate)
    return float((freqs * power).sum() / power.sum())


@pytest.mark.parametrize("speed", [0.5, 2.0])
def test_speed_changes_duration_not_pitch(
    client: openai.OpenAI, tmp_path: Path, speed: float
) -> None:
    normal, _ = decode(speak(client, tmp_path / "1.pcm", "pcm").read_bytes(), "pcm")
    changed, _ = decode(speak(client, tmp_path / "x.pcm", "pcm", speed=speed).read_bytes(), "pcm")
    assert len(changed) / len(normal) == pytest.approx(1 / speed, rel=0.03)
    assert centroid(changed, 24000) == pytest.approx(centroid(normal, 24000), rel=0.15)


def test_sse_sends_base64_audio_deltas_then_done(server: Server) -> None:
    body = {"model": "tts-1", "input": "Server-sent events.", "voice": "alloy",
            "response_format": "pcm", "stream_format": "sse",
            "fixed_token_count": TOKENS}  # fmt: skip
    response = httpx.post(f"{server.url}/v1/audio/speech", json=body, timeout=120,
                          headers={"Authorization": f"Bearer {API_KEY}"})  # fmt: skip
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line]
    assert [e["type"] for e in events][-1] == "speech.audio.done"
    audio = b"".join(base64.b64decode(e["audio"]) for e in events[:-1])
    assert len(audio) == TOKENS * SAMPLES_PER_TOKEN * 2


def test_a_cloned_voice_speaks_and_built_in_names_map_to_the_default(
    client: openai.OpenAI, server: Server, tmp_path: Path
) -> None:
    assert upload(server, "openai-voice.wav", clip_bytes(tmp_path, seed=12)).status_code == 201
    cloned = speak(client, tmp_path / "c.wav", "wav", voice="openai-voice.wav").read_bytes()
    builtin = speak(client, tmp_path / "b.wav", "wav", voice="nova").read_bytes()
    assert cloned != builtin
    listed = [v["voice_id"] for v in client.get("/audio/voices", cast_to=dict)["voices"]]  # type: ignore[index]
    assert "openai-voice.wav" in listed and "alloy" in listed


def test_errors_come_in_openais_shape(client: openai.OpenAI, server: Server) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.audio.speech.create(model="tts-1", voice="nobody.wav", input="Hi")
    assert missing.value.body["param"] == "voice"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="wrong", max_retries=0).models.list()
    with pytest.raises(openai.BadRequestError) as fast:
        client.audio.speech.create(model="tts-1", voice="alloy", input="Hi", speed=5.0)
    assert fast.value.body["param"] == "speed"  # type: ignore[index]


def test_models_lists_the_served_variant(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list().data][:2] == ["chatterbox", "tts-1"]


def test_an_explicit_key_wins_over_a_forwarded_bearer_header(server: Server) -> None:
    """Behind RunPod's load balancer, Authorization may carry RunPod's own key."""
    runpod = {"Authorization": "Bearer runpod-account-key"}
    with_header = httpx.get(f"{server.url}/v1/models", headers={**runpod, "X-API-Key": API_KEY})
    with_query = httpx.get(f"{server.url}/v1/models", headers=runpod, params={"api_key": API_KEY})
    alone = httpx.get(f"{server.url}/v1/models", headers=runpod)
    assert (with_header.status_code, with_query.status_code, alone.status_code) == (200, 200, 401)
