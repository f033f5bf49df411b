"""Pipecat's OpenAITTSService and LiveKit's openai.TTS, unmodified, against the service's
/v1/audio/speech with the cloned voice (docs/API.md's examples, as written there)."""

from __future__ import annotations

import aiohttp
import numpy as np
from livekit.plugins import openai as livekit_openai
from pipecat.frames.frames import ErrorFrame, TTSAudioRawFrame, TTSSpeakFrame
from pipecat.services.openai.tts import OpenAITTSService

from tests.clients.conftest import CLONE
from tests.clients.pipecat_support import run_pipeline
from tests.support.server import API_KEY, Server

TEXT = "A cloned voice, through the client."


async def test_pipecat_openai_speaks_the_clone_through_an_openai_name(
    agent_server: Server,
) -> None:
    # Pipecat ends a context that is silent for stop_frame_timeout_s (3 s by default): a busy
    # 2-core CPU can take longer than that to the first audio.
    tts = OpenAITTSService(base_url=f"{agent_server.url}/v1", api_key=API_KEY,
                           settings=OpenAITTSService.Settings(voice="alloy"),
                           stop_frame_timeout_s=30)  # fmt: skip
    arrivals = await run_pipeline(tts, [TTSSpeakFrame(TEXT)])
    errors = [a.frame for a in arrivals if isinstance(a.frame, ErrorFrame)]
    assert not errors, errors
    audio = [a.frame for a in arrivals if isinstance(a.frame, TTSAudioRawFrame)]
    assert audio and all(f.sample_rate == 24000 and f.num_channels == 1 for f in audio)
    assert sum(len(f.audio) for f in audio) > 2 * 24000 * 0.04  # at least one speech token


async def test_pipecat_openai_still_refuses_a_voice_id(agent_server: Server) -> None:
    """Why the map exists: the client itself stops a voice id before any request."""
    tts = OpenAITTSService(base_url=f"{agent_server.url}/v1", api_key=API_KEY,
                           settings=OpenAITTSService.Settings(voice=CLONE))  # fmt: skip
    arrivals = await run_pipeline(tts, [TTSSpeakFrame(TEXT)])
    errors = [a.frame for a in arrivals if isinstance(a.frame, ErrorFrame)]
    assert errors and "is not supported" in errors[0].error


async def livekit_pcm(server: Server, model: str) -> np.ndarray:
    async with aiohttp.ClientSession():
        tts = livekit_openai.TTS(base_url=f"{server.url}/v1", api_key=API_KEY, model=model,
                                 voice=CLONE)  # fmt: skip
        frames = [event.frame async for event in tts.synthesize(TEXT)]
        await tts.aclose()
    assert frames and all(f.sample_rate == 24000 and f.num_channels == 1 for f in frames)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


async def test_livekit_openai_speaks_the_clone_as_audio_and_as_sse(agent_server: Server) -> None:
    """tts-1 asks for the mp3 stream, gpt-4o-mini-tts for server-sent events: both decode."""
    for model in ("tts-1", "gpt-4o-mini-tts"):
        samples = await livekit_pcm(agent_server, model)
        assert len(samples) > 24000 * 0.04, model
