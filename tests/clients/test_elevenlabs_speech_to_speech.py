"""The unmodified ``elevenlabs`` Python SDK's speech to speech against the service: its
``convert`` and ``stream`` (2.x calls ``/v1/voice-changer/{voice_id}``), an encoded file and raw
16 kHz PCM in, a cloned voice, our audio out in the formats asked for."""

from __future__ import annotations

import io
import math

import av
import numpy as np
from elevenlabs import ElevenLabs

from tests.clients.conftest import CLONE
from tests.support.server import API_KEY, Server
from worker.engine.model.random_checkpoint import reference_clip

SECONDS = 2.5
TOKENS = math.ceil(SECONDS * 25)


def recording() -> np.ndarray:
    return reference_clip(SECONDS, 16000, seed=12)


def test_sdk_convert_returns_the_converted_recording(agent_server: Server) -> None:
    client = ElevenLabs(base_url=agent_server.url, api_key=API_KEY)
    pcm16 = (recording() * 32767).astype("<i2").tobytes()
    chunks = client.speech_to_speech.convert(
        voice_id=CLONE, audio=io.BytesIO(pcm16), file_format="pcm_s16le_16",
        output_format="pcm_24000", model_id="eleven_multilingual_sts_v2", seed=7,
    )  # fmt: skip
    audio = b"".join(chunks)
    assert len(audio) == TOKENS * 960 * 2
    assert np.abs(np.frombuffer(audio, "<i2")).max() > 0


def test_sdk_stream_returns_mp3_as_it_is_made(agent_server: Server) -> None:
    client = ElevenLabs(base_url=agent_server.url, api_key=API_KEY)
    wav = io.BytesIO()
    with av.open(wav, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(
            (recording() * 32767).astype("<i2")[None], format="s16", layout="mono"
        )
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    wav.seek(0)
    chunks = list(
        client.speech_to_speech.stream(
            voice_id=CLONE, audio=("source.wav", wav), output_format="mp3_44100_128"
        )
    )
    mp3 = b"".join(chunks)
    with av.open(io.BytesIO(mp3)) as container:
        decoded = sum(frame.samples for frame in container.decode(audio=0))
    assert abs(decoded / 44100 - TOKENS * 0.04) < 0.1
