"""Every output format, streamed through the real service, decodes to the audio it carries."""

from __future__ import annotations

import io
import json
import time

import av
import httpx
import numpy as np
import pytest
import websockets

from tests.support.server import SAMPLES_PER_TOKEN, Server, pcm

TOKENS = 120  # 4.8 s of audio in four S3Gen windows: the stream has a beginning and an end
SECONDS = TOKENS * SAMPLES_PER_TOKEN / 24000
# The longest codec frame among the formats, in seconds (mp3: 1152 samples at 24 kHz).
CODEC_FRAME = 1152 / 24000 + 1e-6
CONTENT_TYPES = {
    "wav": "audio/wav",
    "raw_pcm": "audio/pcm",
    "mulaw": "audio/basic",
    "mp3": "audio/mpeg",
    "fmp4": 'audio/mp4; codecs="mp4a.40.2"',
    "webm": 'audio/webm; codecs="opus"',
    "ogg": 'audio/ogg; codecs="opus"',
    "flac": "audio/flac",
    "aac": "audio/aac",
}


@pytest.fixture(autouse=True)
def idle(server: Server) -> None:
    server.wait_idle()


@pytest.fixture(scope="module")
def reference(server: Server) -> np.ndarray:
    """The PCM every format below carries (same text, seed and token count)."""
    response = httpx.get(f"{server.url}/tts/generate", headers=server.headers, timeout=120,
                         params={**params(), "format": "raw_pcm"})  # fmt: skip
    return pcm(response.content).astype(np.float32) / 32768


def params(**extra: object) -> dict[str, object]:
    return {"text": "Every format, streamed.", "seed": 21, "fixed_token_count": TOKENS, **extra}


def decode(data: bytes, audio_format: str) -> tuple[np.ndarray, int]:
    """Mono float PCM and its rate, decoded by libav (PyAV) the way a player would."""
    if audio_format == "raw_pcm":
        return pcm(data).astype(np.float32) / 32768, 24000
    options = {"sample_rate": "8000", "ch_layout": "mono"} if audio_format == "mulaw" else {}
    container = av.open(io.BytesIO(data), format="mulaw" if audio_format == "mulaw" else None,
                        options=options)  # fmt: skip
    frames = [f.to_ndarray().astype(np.float32).reshape(-1) for f in container.decode(audio=0)]
    rate = container.streams.audio[0].rate
    samples = np.concatenate(frames)
    if samples.dtype != np.float32 or np.abs(samples).max() > 1.5:
        samples = samples / 32768
    return samples, rate


def stream(server: Server, **query: object) -> tuple[httpx.Response, bytes, float, float]:
    """The response, its body, and when its first and last bytes arrived (from the request)."""
    started = time.perf_counter()
    with httpx.stream("GET", f"{server.url}/tts/generate", params=query,
                      headers=server.headers, timeout=120) as response:  # fmt: skip
        chunks = []
        first = None
        for chunk in response.iter_raw():
            first = first or time.perf_counter() - started
            chunks.append(chunk)
        assert first is not None
        return response, b"".join(chunks), first, time.perf_counter() - started


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


@pytest.mark.parametrize("audio_format", list(CONTENT_TYPES))
def test_each_format_streams_and_decodes_to_the_whole_audio(
    server: Server, reference: np.ndarray, audio_format: str
) -> None:
    response, body, first, last = stream(server, **params(format=audio_format))
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPES[audio_format]
    assert response.headers["x-accel-buffering"] == "no"
    assert first < last - 0.5, "the first bytes came only when synthesis ended"
    audio, rate = decode(body, audio_format)
    # ADTS AAC keeps its 1024 samples of encoder priming: no container field can trim them.
    priming = 1024 / 24000 if audio_format == "aac" else 0.0
    assert abs(len(audio) / rate - SECONDS) <= CODEC_FRAME + priming
    # Not silent where the speech was: the level of every 200 ms stretch follows the PCM's.
    hop_in, hop_out = int(0.2 * 24000), int(0.2 * rate)
    for i in range(int(SECONDS / 0.2) - 1):
        expected = rms(reference[i * hop_in : (i + 1) * hop_in])
        got = rms(audio[i * hop_out : (i + 1) * hop_out])
        if expected > 0.01:
            assert 0.3 * expected < got < 3 * expected, f"{audio_format} at {i * 0.2:.1f} s"


@pytest.mark.parametrize(("audio_format", "rate"), [("wav", 16000), ("mp3", 44100), ("ogg", 48000),
                                                   ("flac", 8000), ("raw_pcm", 22050)])  # fmt: skip
def test_sample_rate_resamples_the_output(server: Server, audio_format: str, rate: int) -> None:
    response, body, _, _ = stream(server, **params(format=audio_format, sample_rate=rate))
    assert int(response.headers["x-sample-rate"]) == rate
    if audio_format == "raw_pcm":
        assert abs(len(body) / 2 / rate - SECONDS) < 0.01
        return
    audio, decoded_rate = decode(body, audio_format)
    assert decoded_rate == rate
    assert abs(len(audio) / rate - SECONDS) <= CODEC_FRAME


def test_accept_header_picks_the_format_and_format_overrides_it(server: Server) -> None:
    def content_type(accept: str, **extra: object) -> str:
        query = {"text": "Hi.", "fixed_token_count": 10, **extra}
        headers = {**server.headers, "Accept": accept}
        response = httpx.get(f"{server.url}/tts/generate", params=query, headers=headers)
        return response.headers["content-type"]

    assert content_type("audio/ogg, audio/*;q=0.5") == CONTENT_TYPES["ogg"]
    assert content_type("audio/ogg", format="flac") == "audio/flac"
    assert content_type("*/*") == "audio/wav"


@pytest.mark.parametrize("audio_format", ["webm", "mulaw"])
async def test_the_websocket_streams_the_same_formats(server: Server, audio_format: str) -> None:
    async with websockets.connect(server.ws_url, additional_headers=server.headers) as ws:
        await ws.send(json.dumps({**params(format=audio_format)}))
        started = json.loads(await ws.recv())
        assert started["content_type"] == CONTENT_TYPES[audio_format]
        body = b""
        while isinstance(message := await ws.recv(), bytes):
            body += message
        assert json.loads(message)["type"] == "done"
    audio, rate = decode(body, audio_format)  # Opus decodes at 48 kHz whatever it was fed
    assert started["sample_rate"] == (8000 if audio_format == "mulaw" else 24000)
    assert abs(len(audio) / rate - SECONDS) <= CODEC_FRAME
